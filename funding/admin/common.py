"""Shared by the funding admin modules."""


def no_delete(cls):
    cls.has_delete_permission = lambda self, request, obj=None: False
    return cls
