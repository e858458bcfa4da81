class FilterModule(object):
    def filters(self):
        return {'image_name': lambda s: 'amichain-' + s}
