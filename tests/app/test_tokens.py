"""API tokens: shown once, stored hashed, scoped, revocable, expiring, last use recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.errors import Forbidden, Unauthorized, ValidationFailed
from app.models import ApiToken, AuditEvent
from app.security import hash_token
from app.services.tokens import authenticate, create_token, list_tokens, revoke_token
from tests.factories import make_token, make_user


def test_only_the_hash_is_stored_and_the_prefix_identifies_it(db):
    token, plaintext = make_token(db)
    stored = db.scalar(select(ApiToken).where(ApiToken.id == token.id))
    assert stored.token_hash == hash_token(plaintext) != plaintext
    assert plaintext.startswith(stored.prefix) and len(stored.prefix) < len(plaintext) // 2
    assert plaintext not in str(db.scalars(select(AuditEvent.details)).all())


def test_tokens_are_for_active_admins_with_a_known_scope(db):
    rater = make_user(db)
    with pytest.raises(ValidationFailed):
        create_token(db, user=rater, name="x")
    admin = make_user(db, role="admin")
    with pytest.raises(ValidationFailed) as scope:
        create_token(db, user=admin, name="x", scope="admin")
    assert scope.value.field == "scope"
    with pytest.raises(ValidationFailed):
        create_token(db, user=admin, name="  ")


def test_authenticate_checks_scope_and_records_use_once_a_minute(db):
    token, plaintext = make_token(db, scope="read")
    assert authenticate(db, plaintext=plaintext, scope="read").id == token.id
    first_use = token.last_used_at
    assert first_use is not None
    authenticate(db, plaintext=plaintext, scope="read")
    assert token.last_used_at == first_use  # within a minute: no second write
    token.last_used_at = datetime.now(UTC) - timedelta(minutes=5)
    authenticate(db, plaintext=plaintext, scope="read")
    assert token.last_used_at > first_use
    with pytest.raises(Forbidden):
        authenticate(db, plaintext=plaintext, scope="write")
    _, writer = make_token(db, scope="write")
    assert authenticate(db, plaintext=writer, scope="write").scope == "write"


def test_revoked_expired_and_unknown_tokens_are_unauthorized(db):
    token, plaintext = make_token(db)
    for bad in (None, "", "not-ours", "pfl_unknown"):
        with pytest.raises(Unauthorized):
            authenticate(db, plaintext=bad, scope="read")
    revoke_token(db, token_id=token.id)
    with pytest.raises(Unauthorized):
        authenticate(db, plaintext=plaintext, scope="read")
    assert token not in list_tokens(db) and token in list_tokens(db, include_revoked=True)
    admin = make_user(db, role="admin")
    expiring, secret = create_token(db, user=admin, name="short", expires_in_days=1)
    expiring.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(Unauthorized):
        authenticate(db, plaintext=secret, scope="read")


def test_revoking_twice_keeps_the_first_time(db):
    token, _ = make_token(db)
    first = revoke_token(db, token_id=token.id).revoked_at
    assert revoke_token(db, token_id=token.id).revoked_at == first
