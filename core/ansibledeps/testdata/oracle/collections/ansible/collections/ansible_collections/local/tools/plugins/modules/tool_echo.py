#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

if __name__ == '__main__':
    m = AnsibleModule(argument_spec=dict(msg=dict(type='str')))
    m.exit_json(changed=False, msg=m.params['msg'])
