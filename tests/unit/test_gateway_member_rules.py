"""The gateway's member-management rules, as pure functions."""
import uuid

import pytest

from services.gateway.domain import members as rules
from services.gateway.domain.credentials import csrf_matches, csrf_token, hash_secret, is_pat, new_pat_secret
from services.gateway.domain.model import Identity, Membership, User

WS = uuid.uuid4()


def m(role, okr_access=True):
    return Membership(WS, uuid.uuid4(), role, okr_access)


def test_outsiders_learn_nothing_and_non_managers_are_refused():
    for check in (lambda a: rules.check_list(a), lambda a: rules.check_audit(a),
                  lambda a: rules.check_invite(a, "member"),
                  lambda a: rules.check_change(a, m("member"), "viewer", 1),
                  lambda a: rules.check_remove(a, m("member"), 1)):
        with pytest.raises(rules.WorkspaceHidden) as hidden:
            check(None)
        assert hidden.value.status == 404
    for role in ("member", "viewer"):
        rules.check_list(m(role))
        with pytest.raises(rules.NotPermitted):
            rules.check_audit(m(role))
        with pytest.raises(rules.NotPermitted):
            rules.check_invite(m(role), "viewer")
        with pytest.raises(rules.NotPermitted):
            rules.check_change(m(role), m("viewer"), "member", 1)
        with pytest.raises(rules.NotPermitted):
            rules.check_remove(m(role), m("viewer"), 1)


def test_listing_needs_goals_access_unless_managing():
    with pytest.raises(rules.NotPermitted) as refused:
        rules.check_list(m("member", okr_access=False))
    assert refused.value.status == 403
    rules.check_list(m("admin", okr_access=False))


def test_admins_manage_everyone_but_owners():
    admin = m("admin")
    rules.check_invite(admin, "admin")
    rules.check_change(admin, m("member"), "admin", 1)
    rules.check_change(admin, m("admin"), None, 1)  # e.g. okr_access only
    rules.check_remove(admin, m("viewer"), 1)
    with pytest.raises(rules.NotPermitted, match="owner"):
        rules.check_invite(admin, "owner")
    with pytest.raises(rules.NotPermitted, match="owner"):
        rules.check_change(admin, m("member"), "owner", 2)
    with pytest.raises(rules.NotPermitted, match="owner"):
        rules.check_change(admin, m("owner"), "admin", 2)
    with pytest.raises(rules.NotPermitted, match="owner"):
        rules.check_change(admin, m("owner"), None, 2)
    with pytest.raises(rules.NotPermitted, match="owner"):
        rules.check_remove(admin, m("owner"), 2)


def test_owners_manage_owners_but_never_the_last_one():
    owner = m("owner")
    rules.check_invite(owner, "owner")
    rules.check_change(owner, m("member"), "owner", 1)
    rules.check_change(owner, m("owner"), "admin", 2)
    rules.check_remove(owner, m("owner"), 2)
    rules.check_change(owner, owner, None, 1)  # the last owner may turn their own access off
    with pytest.raises(rules.LastOwner) as last:
        rules.check_change(owner, owner, "admin", 1)
    assert last.value.status == 409
    with pytest.raises(rules.LastOwner):
        rules.check_remove(owner, owner, 1)


def test_unknown_target_is_not_found_for_managers_only():
    with pytest.raises(rules.MemberNotFound):
        rules.check_change(m("admin"), None, "viewer", 1)
    with pytest.raises(rules.MemberNotFound):
        rules.check_remove(m("owner"), None, 1)
    with pytest.raises(rules.NotPermitted):
        rules.check_remove(m("member"), None, 1)  # a member learns nothing about who is not there


def test_principal_parts_of_an_identity():
    user = User(uuid.uuid4(), "a@example.com", "x", None)
    on, off = uuid.uuid4(), uuid.uuid4()
    identity = Identity(user, [Membership(on, user.id, "member", True), Membership(off, user.id, "admin", False)])
    assert identity.workspace_roles() == {str(on): "member"}
    assert identity.workspaces_without_okr_access() == frozenset({str(off)})


def test_secrets_are_hashed_and_csrf_tokens_bound_to_their_session():
    secret = new_pat_secret()
    assert is_pat(secret) and len(secret) > 40 and hash_secret(secret) != secret and len(hash_secret(secret)) == 64
    assert new_pat_secret() != secret
    token = csrf_token("key", "session-a")
    assert csrf_matches("key", "session-a", token)
    assert not csrf_matches("key", "session-b", token)
    assert not csrf_matches("other-key", "session-a", token)
    assert not csrf_matches("key", "session-a", None) and not csrf_matches("key", "session-a", "")
