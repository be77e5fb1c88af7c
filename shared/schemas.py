from marshmallow import RAISE, Schema


class StrictSchema(Schema):
    """Refuses unknown fields: no mass assignment of ids, authors, times or versions."""

    class Meta:
        unknown = RAISE
