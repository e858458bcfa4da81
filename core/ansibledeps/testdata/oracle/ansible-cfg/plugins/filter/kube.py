class FilterModule(object):
    def filters(self):
        return {'kube_name': lambda s: 'kube-' + s}
