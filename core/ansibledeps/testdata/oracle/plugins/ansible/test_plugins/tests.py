class TestModule(object):
    def tests(self):
        return {'amichain': lambda s: True}
