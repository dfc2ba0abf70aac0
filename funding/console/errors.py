from funding.errors import EngineError


class PermissionDenied(EngineError):
    """A staff member tried an action their role does not include."""

    code = "permission_denied"
    http_status = 403
    default_message = "Your role does not allow this action."
