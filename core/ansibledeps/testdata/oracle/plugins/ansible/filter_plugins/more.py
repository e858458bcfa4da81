class FilterModule(object):
    def filters(self):
        return {'twice': lambda s: s + s}
