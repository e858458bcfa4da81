#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.amichain_util import upper


def main():
    m = AnsibleModule(argument_spec=dict(msg=dict(type='str')))
    m.exit_json(changed=False, msg=upper(m.params['msg']))


if __name__ == '__main__':
    main()
