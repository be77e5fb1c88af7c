from marshmallow import Schema, fields, validate

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
