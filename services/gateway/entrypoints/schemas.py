from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.gateway.domain.credentials import PAT_DEFAULT_DAYS, PAT_MAX_DAYS, PAT_SCOPES
from services.gateway.domain.model import DISPLAY_NAME_MAX, MIN_PASSWORD
from shared.access import ROLES
from shared.schemas import StrictSchema


class LoginIn(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(1, 254))
    password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)


class WorkspaceOut(Schema):
    id = fields.UUID()
    name = fields.String()
    role = fields.String()
    okr_access = fields.Boolean()


class UserOut(Schema):
    id = fields.UUID()
    email = fields.String()
    display_name = fields.String(metadata={"description": "the name others see; the email before \"@\" until set"})
    workspaces = fields.List(fields.Nested(WorkspaceOut))


class TokenOut(Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)


class MembersQuery(StrictSchema):
    id = fields.List(fields.UUID(), required=True, validate=validate.Length(1, 500))


class MembersOut(Schema):
    members = fields.List(fields.UUID())


class CurrentPrincipalOut(Schema):
    user_id = fields.UUID()
    workspaces = fields.Dict(keys=fields.String(), values=fields.String(),
                             metadata={"description": "Workspace id -> role, where Goals/OKRs access is on"})
    without_okr_access = fields.List(fields.String())


# -- sessions, invitations, personal API tokens ----------------------------------------------

class SessionOut(Schema):
    csrf_token = fields.String(metadata={"description": "send it as X-CSRF-Token on POST, PUT, PATCH and DELETE"})
    expires_at = fields.AwareDateTime()
    user = fields.Nested(UserOut)


class AcceptInviteIn(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(1, 200), load_only=True)
    password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)
    display_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000), metadata={
        "description": f"names a new account (1-{DISPLAY_NAME_MAX} characters); an existing one keeps its own"})


class MePatchIn(StrictSchema):
    display_name = fields.String(required=True, validate=validate.Length(max=1000), metadata={
        "description": f"1-{DISPLAY_NAME_MAX} characters after trimming, no control characters"})


class PasswordChangeIn(StrictSchema):
    current_password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True)
    new_password = fields.String(required=True, validate=validate.Length(1, 1024), load_only=True,
                                 metadata={"description": f"at least {MIN_PASSWORD} characters"})


class PersonalTokenIn(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 100))
    expires_in_days = fields.Integer(load_default=PAT_DEFAULT_DAYS, validate=validate.Range(1, PAT_MAX_DAYS),
                                     metadata={"description": f"every token expires: {PAT_DEFAULT_DAYS} days "
                                                              "unless given"})
    scope = fields.String(load_default="read", validate=validate.OneOf(PAT_SCOPES), metadata={
        "description": "read: GET requests and exports; check_in: also record Check-ins; admin: everything "
                       "you may do (never creating personal tokens)"})


class PersonalTokenOut(Schema):
    id = fields.UUID()
    name = fields.String()
    created_at = fields.AwareDateTime()
    last_used_at = fields.AwareDateTime(allow_none=True)
    expires_at = fields.AwareDateTime(allow_none=True)
    scope = fields.String()
    revoked = fields.Boolean()


class PersonalTokenCreatedOut(PersonalTokenOut):
    token = fields.String(metadata={"description": "the secret, shown this once: okrsnap_pat_..."})


class PersonalTokensOut(Schema):
    tokens = fields.List(fields.Nested(PersonalTokenOut))


# -- Workspace members -------------------------------------------------------------------------

class MemberOut(Schema):
    id = fields.UUID()
    email = fields.String()
    display_name = fields.String(metadata={"description": "the name others see; the email before \"@\" until set"})
    role = fields.String()
    okr_access = fields.Boolean()


class MemberListOut(Schema):
    members = fields.List(fields.Nested(MemberOut))


class MemberInviteIn(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(1, 254))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    okr_access = fields.Boolean(load_default=True)


class InvitationOut(Schema):
    email = fields.String()
    role = fields.String()
    okr_access = fields.Boolean()
    token = fields.String(metadata={"description": "one-time; POST /auth/accept-invite with it; shown once"})
    expires_at = fields.AwareDateTime()


class MemberInvitedOut(Schema):
    member = fields.Nested(MemberOut, allow_none=True, metadata={
        "description": "always null: nobody is added before accepting their invitation"})
    invitation = fields.Nested(InvitationOut, allow_none=True, metadata={
        "description": "the invitation, whether or not the email has an account"})


class MemberPatchIn(StrictSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    okr_access = fields.Boolean()

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("Send role, okr_access or both.", "_schema")


# -- audit log ---------------------------------------------------------------------------------

AUDIT_MAX_LIMIT = 200


class AuditQuery(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, AUDIT_MAX_LIMIT))
    before = fields.Integer(validate=validate.Range(min=1), metadata={"description": "next_before of the last page"})


class AuditEventOut(Schema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    action = fields.String()
    actor_user_id = fields.UUID(allow_none=True)
    actor_email = fields.String(allow_none=True)
    workspace_id = fields.UUID(allow_none=True)
    target = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    detail = fields.Dict(allow_none=True)


class AuditPageOut(Schema):
    events = fields.List(fields.Nested(AuditEventOut))
    next_before = fields.Integer(allow_none=True, metadata={"description": "pass as before for older events"})
