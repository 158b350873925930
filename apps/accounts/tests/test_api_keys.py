"""User API keys (/me/api-keys, X-API-KEY) and org key/secret pairs (X-ORG-KEY + X-ORG-SECRET)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services, tokens
from apps.accounts.apikeys import API_KEY_CACHE_PREFIX, forget_local_key
from apps.accounts.models import APIKey, User


@pytest.fixture
def hash_calls(monkeypatch):
    """Counts argon2id verifications (a spy: the real hasher still runs)."""
    calls = []
    real = tokens.slow_verify

    def spy(stored_hash, secret):
        calls.append(1)
        return real(stored_hash, secret)

    monkeypatch.setattr(tokens, "slow_verify", spy)
    return calls


def _key_client(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plain)
    return client


def _used_key(user: User) -> tuple[services.CreatedKey, APIClient]:
    """A new user key and a client sending it, used once (so this process remembers it)."""
    created = services.api_key_create_for_user(user=user)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    return created, client


def test_a_created_user_key_is_shown_once_and_then_authenticates(bearer_client, member):
    client = bearer_client(member)
    response = client.post(
        "/api/v1/me/api-keys", {"name": "ci", "expires_in_hours": 24}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["plain"].startswith("u_") and body["scope"] == "user" and body["name"] == "ci"
    assert body["expires_at"] is not None
    listed = client.get("/api/v1/me/api-keys").json()
    assert [k["id"] for k in listed] == [body["id"]]
    assert body["plain"] not in str(listed) and "plain" not in listed[0]
    me = _key_client(body["plain"]).get("/api/v1/me")
    assert me.status_code == 200 and me.json()["id"] == str(member.pk)


def test_the_key_is_stored_only_as_a_slow_hash(member):
    created = services.api_key_create_for_user(user=member, name="x")
    row = APIKey.objects.get(pk=created.key.pk)
    secret = created.plain.split("_", 2)[2]
    assert row.secret_hash.startswith("$argon2id$")
    assert secret not in row.secret_hash and created.plain not in str(row.__dict__)


def test_a_thousand_requests_cost_at_most_one_slow_hash(member, hash_calls):
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    for _ in range(200):
        assert client.get("/api/v1/me").status_code == 200
    assert len(hash_calls) == 1


def test_a_wrong_secret_for_a_known_key_id_is_refused_and_then_rate_limited(member, hash_calls):
    created = services.api_key_create_for_user(user=member)
    public_id = created.key.public_id
    wrong = _key_client(f"u_{public_id}_{'A' * 43}")
    for _ in range(15):
        assert wrong.get("/api/v1/me").status_code == 401
    # After the address's failure budget, wrong secrets no longer reach argon2.
    assert len(hash_calls) == 10


def test_a_cached_success_does_not_admit_a_different_secret(member):
    created = services.api_key_create_for_user(user=member)
    assert _key_client(created.plain).get("/api/v1/me").status_code == 200
    forged = f"u_{created.key.public_id}_{'B' * 43}"
    assert _key_client(forged).get("/api/v1/me").status_code == 401


def test_a_revoked_key_stops_working_immediately(bearer_client, member):
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    response = bearer_client(member).delete(f"/api/v1/me/api-keys/{created.key.pk}")
    assert response.status_code == 204
    assert client.get("/api/v1/me").status_code == 401
    assert bearer_client(member).get("/api/v1/me/api-keys").json() == []


def test_revocation_holds_even_if_the_cache_entry_survived_at_most_for_the_ttl(member):
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    # Revoke behind the cache's back (e.g. straight in the database)...
    APIKey.objects.filter(pk=created.key.pk).update(revoked_at=timezone.now())
    # ...then the cached successes expire (TTL <= 60 s); simulated by dropping the entries.
    cache.delete(API_KEY_CACHE_PREFIX + created.key.public_id)
    forget_local_key()
    assert client.get("/api/v1/me").status_code == 401


def test_an_expired_key_is_refused(member):
    created = services.api_key_create_for_user(user=member, expires_in_hours=1)
    APIKey.objects.filter(pk=created.key.pk).update(expires_at=timezone.now() - timedelta(1))
    assert _key_client(created.plain).get("/api/v1/me").status_code == 401


def test_last_used_at_is_recorded_once_per_throttle_period(member, django_assert_max_num_queries):
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    client.get("/api/v1/me")
    first = APIKey.objects.get(pk=created.key.pk).last_used_at
    assert first is not None
    client.get("/api/v1/me")
    assert APIKey.objects.get(pk=created.key.pk).last_used_at == first


def test_a_disabled_users_key_is_refused(member):
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    member.is_disabled = True
    member.save()
    # Saved behind the services' back (no new generation): a process that has not remembered
    # the key checks the user.
    forget_local_key()
    assert client.get("/api/v1/me").status_code == 401


def test_disabling_a_user_in_the_admin_stops_their_remembered_key_at_once(
    member, django_capture_on_commit_callbacks
):
    _, client = _used_key(member)
    admin = Client()
    admin.force_login(User.objects.create_user("ops@example.com", is_admin=True))
    with django_capture_on_commit_callbacks(execute=True):
        change = admin.post(
            f"/admin/accounts/user/{member.pk}/change/",
            {
                "primary_email": member.primary_email,
                "display_name": member.display_name,
                "avatar_url": member.avatar_url,
                "is_disabled": "on",
            },
        )
    assert change.status_code == 302, change.content
    assert User.objects.get(pk=member.pk).is_disabled
    assert client.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize(
    "value", ["", "garbage", "u_short_x", "org_0123456789abcdef", "u_0123456789abcdef_nope"]
)
def test_malformed_or_unknown_keys_are_401(db, value):
    response = _key_client(value).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_someone_elses_key_cannot_be_revoked(bearer_client, member, outsider):
    created = services.api_key_create_for_user(user=outsider)
    response = bearer_client(member).delete(f"/api/v1/me/api-keys/{created.key.pk}")
    assert response.status_code == 404
    assert _key_client(created.plain).get("/api/v1/me").status_code == 200


def test_a_malformed_key_id_is_400(bearer_client, member):
    response = bearer_client(member).delete("/api/v1/me/api-keys/nope")
    assert response.status_code == 400 and response.json()["code"] == "invalid_id"


def test_an_org_key_pair_is_the_orgs_machine_principal(real_org_key_client, org, other_org, owner):
    client = real_org_key_client(org)
    response = client.get(f"/api/v1/orgs/{org.pk}")
    assert response.status_code == 200 and response.json()["id"] == str(org.pk)
    # X-Org-ID is ignored for org keys: it cannot point the key at another organization.
    client.credentials(
        HTTP_X_ORG_KEY=client._credentials["HTTP_X_ORG_KEY"],
        HTTP_X_ORG_SECRET=client._credentials["HTTP_X_ORG_SECRET"],
        HTTP_X_ORG_ID=str(other_org.pk),
    )
    assert client.get(f"/api/v1/orgs/{other_org.pk}").status_code == 404
    # An org key is not a person.
    assert client.get("/api/v1/me").status_code == 401


def test_an_org_key_with_a_wrong_secret_is_401(real_org_key_client, org):
    client = real_org_key_client(org)
    client.credentials(
        HTTP_X_ORG_KEY=client._credentials["HTTP_X_ORG_KEY"], HTTP_X_ORG_SECRET="wrong"
    )
    response = client.get(f"/api/v1/orgs/{org.pk}")
    assert response.status_code == 401
    assert response.json()["message"] == "invalid org credentials"


def test_create_api_key_command_prints_only_the_key(member):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "create_api_key", "--email", member.primary_email, "--name", "bootstrap", stdout=out
    )
    plain = out.getvalue().strip()
    assert plain.startswith("u_") and "\n" not in plain
    assert _key_client(plain).get("/api/v1/me").status_code == 200


def test_create_admin_command_creates_or_promotes(db, member):
    from io import StringIO

    from django.core.management import call_command

    from apps.accounts.models import User

    call_command("create_admin", "--email", "Root@Example.com", stdout=StringIO())
    assert User.objects.get(primary_email="root@example.com").is_admin
    call_command("create_admin", "--email", member.primary_email, stdout=StringIO())
    member.refresh_from_db()
    assert member.is_admin


def test_keys_generate_command_activates_a_key(db):
    from io import StringIO

    from django.core.management import call_command

    from apps.accounts.models import SigningKey

    out = StringIO()
    call_command("keys", "generate", "--bits", "2048", stdout=out)
    assert SigningKey.objects.filter(is_active=True).count() == 1
    assert "kid=" in out.getvalue()


def test_my_key_list_query_count_does_not_grow_with_keys(
    client_for, member, django_assert_max_num_queries
):
    client = client_for(member)
    services.api_key_create_for_user(user=member)
    with django_assert_max_num_queries(1):
        client.get("/api/v1/me/api-keys")
    for _ in range(10):
        services.api_key_create_for_user(user=member)
    with django_assert_max_num_queries(1):
        assert len(client.get("/api/v1/me/api-keys").json()) == 11


def test_me_shows_emails_primary_first_and_my_organizations(
    client_for, member, org, django_assert_max_num_queries
):
    from apps.accounts.models import UserEmail

    UserEmail.objects.create(user=member, email="alice.alt@acme.example")
    UserEmail.objects.create(
        user=member, email=member.primary_email, is_primary=True, is_verified=True
    )
    client = client_for(member, org)
    with django_assert_max_num_queries(2):
        body = client.get("/api/v1/me").json()
    assert [e["email"] for e in body["emails"]] == [member.primary_email, "alice.alt@acme.example"]
    assert body["emails"][0]["user"]["id"] == str(member.pk)
    assert [o["id"] for o in body["organizations"]] == [str(org.pk)]


def test_a_stale_org_header_does_not_break_me(client_for, member):
    client = client_for(member)
    client.credentials(HTTP_X_ORG_ID="00000000-0000-0000-0000-000000000000")
    assert client.get("/api/v1/me").status_code == 200


def test_patch_me_changes_only_the_display_name(client_for, member):
    response = client_for(member).patch(
        "/api/v1/me", {"display_name": "Alice A.", "is_admin": True}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice A." and response.json()["is_admin"] is False
    assert "emails" not in response.json()


def test_create_admin_sets_a_break_glass_password_only_from_stdin(db, monkeypatch):
    import io
    from io import StringIO

    from django.core.management import call_command

    from apps.accounts.models import User

    monkeypatch.setattr("sys.stdin", io.StringIO("CANARY-break-glass-Passw0rd!\n"))
    out = StringIO()
    call_command("create_admin", "--email", "ops@example.com", "--password-stdin", stdout=out)
    user = User.objects.get(primary_email="ops@example.com")
    assert user.is_admin and user.check_password("CANARY-break-glass-Passw0rd!")
    assert "CANARY" not in out.getvalue()


def test_wrong_secrets_from_one_address_do_not_lock_the_owner_out_anywhere(member, hash_calls):
    created = services.api_key_create_for_user(user=member)
    public_id = created.key.public_id
    attacker = APIClient(REMOTE_ADDR="203.0.113.66")
    attacker.credentials(HTTP_X_API_KEY=f"u_{public_id}_{'A' * 43}")
    for _ in range(15):
        assert attacker.get("/api/v1/me").status_code == 401
    owner = APIClient(REMOTE_ADDR="198.51.100.7")
    owner.credentials(HTTP_X_API_KEY=created.plain)
    assert owner.get("/api/v1/me").status_code == 200
    # Behind the same address (NAT, a proxy) the owner's right secret is still verified.
    neighbour = APIClient(REMOTE_ADDR="203.0.113.66")
    neighbour.credentials(HTTP_X_API_KEY=created.plain)
    cache.delete(API_KEY_CACHE_PREFIX + public_id)
    forget_local_key()
    assert neighbour.get("/api/v1/me").status_code == 200


def test_a_key_revoked_behind_the_caches_back_dies_at_its_next_last_used_write(member, settings):
    settings.API_KEY_LAST_USED_THROTTLE_SECONDS = 0
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    # Revoked in another process whose cache delete was lost: our entries are still there.
    APIKey.objects.filter(pk=created.key.pk).update(revoked_at=timezone.now())
    assert client.get("/api/v1/me").status_code == 401
    # ...and the touch did not write a fresh cache entry that would keep admitting it.
    assert cache.get(API_KEY_CACHE_PREFIX + created.key.public_id) is None
    forget_local_key()
    assert client.get("/api/v1/me").status_code == 401


def test_a_key_revoked_behind_the_shared_cache_dies_when_touched_from_it(member, settings):
    settings.API_KEY_LAST_USED_THROTTLE_SECONDS = 0
    created = services.api_key_create_for_user(user=member)
    client = _key_client(created.plain)
    assert client.get("/api/v1/me").status_code == 200
    APIKey.objects.filter(pk=created.key.pk).update(revoked_at=timezone.now())
    forget_local_key()  # another process: only the shared entry remembers the key
    assert client.get("/api/v1/me").status_code == 401
    assert cache.get(API_KEY_CACHE_PREFIX + created.key.public_id) is None


def test_revoking_or_deleting_a_key_in_the_admin_stops_it_at_once(member):
    kept = services.api_key_create_for_user(user=member, name="kept")
    gone = services.api_key_create_for_user(user=member, name="gone")
    for created in (kept, gone):
        assert _key_client(created.plain).get("/api/v1/me").status_code == 200
    admin = Client()
    admin.force_login(User.objects.create_user("ops@example.com", is_admin=True))
    # Revocation is the "Revoke the selected keys" action, confirmed (or "Revoke" on a key's page).
    change = admin.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [str(kept.key.pk)], "confirm": "yes"},
    )
    assert change.status_code == 302, change.content
    assert _key_client(kept.plain).get("/api/v1/me").status_code == 401
    delete = admin.post(
        "/admin/accounts/apikey/",
        {"action": "delete_selected", "_selected_action": [str(gone.key.pk)], "post": "yes"},
    )
    assert delete.status_code == 302
    assert not APIKey.objects.filter(pk=gone.key.pk).exists()
    assert _key_client(gone.plain).get("/api/v1/me").status_code == 401


def test_create_admin_with_org_gives_a_fresh_installation_an_organization_it_owns(db):
    from io import StringIO

    from django.core.management import call_command

    from apps.orgs.models import Membership

    out = StringIO()
    call_command("create_admin", "--email", "ops@example.com", "--org", "Acme", stdout=out)
    membership = Membership.objects.get(user__primary_email="ops@example.com")
    assert (membership.organization.name, membership.role) == ("Acme", "owner")
    assert str(membership.organization.pk) in out.getvalue()
    # Run again (a start script): no second organization.
    call_command("create_admin", "--email", "ops@example.com", "--org", "Acme", stdout=StringIO())
    assert Membership.objects.filter(user__primary_email="ops@example.com").count() == 1


def test_create_admin_refuses_an_org_name_the_api_refuses(db):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--org"):
        call_command("create_admin", "--email", "ops@example.com", "--org", "   ")


def test_a_key_revoked_in_another_process_is_refused_here_once_the_generation_changes(member, org):
    from apps.core.cache import auth_generation_bump

    user_key = services.api_key_create_for_user(user=member)
    org_key = services.api_key_create_for_org(organization=org)
    org_client = APIClient()
    org_client.credentials(HTTP_X_ORG_KEY=org_key.plain, HTTP_X_ORG_SECRET=org_key.secret)
    assert _key_client(user_key.plain).get("/api/v1/me").status_code == 200
    assert org_client.get("/api/v1/servers").status_code == 200
    # Revoked by another process: its rows changed, this process still remembers both keys...
    APIKey.objects.filter(pk__in=[user_key.key.pk, org_key.key.pk]).update(
        revoked_at=timezone.now()
    )
    # ...until that process, having committed, sets a new credential generation.
    auth_generation_bump()
    assert _key_client(user_key.plain).get("/api/v1/me").status_code == 401
    assert org_client.get("/api/v1/servers").status_code == 401


def test_an_unrelated_revocation_costs_a_remembered_key_one_query_and_no_slow_hash(
    member, hash_calls
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.core.cache import auth_generation_bump

    _, client = _used_key(member)
    with CaptureQueriesContext(connection) as steady:
        assert client.get("/api/v1/me").status_code == 200
    auth_generation_bump()
    with CaptureQueriesContext(connection) as after_bump:
        assert client.get("/api/v1/me").status_code == 200
    assert len(after_bump) == len(steady) + 1  # the key's row, checked again
    assert len(hash_calls) == 1


DEAD_CACHE = {
    "default": {
        "BACKEND": "apps.core.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
    }
}


def test_with_the_cache_down_keys_are_checked_against_the_database_on_every_request(
    member, settings, hash_calls, monkeypatch
):
    from django.conf import settings as live_settings

    from apps.core import cache as core_cache

    remembered = services.api_key_create_for_user(user=member)
    fresh = services.api_key_create_for_user(user=member)
    healthy = live_settings.CACHES
    assert _key_client(remembered.plain).get("/api/v1/me").status_code == 200

    settings.CACHES = DEAD_CACHE
    assert _key_client(remembered.plain).get("/api/v1/me").status_code == 200
    assert _key_client(fresh.plain).get("/api/v1/me").status_code == 200
    assert _key_client(f"u_{fresh.key.public_id}_{'A' * 43}").get("/api/v1/me").status_code == 401
    APIKey.objects.filter(pk=remembered.key.pk).update(revoked_at=timezone.now())
    assert _key_client(remembered.plain).get("/api/v1/me").status_code == 401
    # The process's memory still spares the slow hash for a key it verified before.
    assert len(hash_calls) == 3
    assert _key_client(fresh.plain).get("/api/v1/me").status_code == 200
    assert len(hash_calls) == 3

    settings.CACHES = healthy
    monkeypatch.setattr(core_cache, "_down_until", 0.0)  # as if the retry delay had passed
    # Reaching the cache again, this process first sets a new generation: what was stamped
    # before the outage (when a revocation may have missed the cache) is checked again.
    cache.set(API_KEY_CACHE_PREFIX + remembered.key.public_id, {"stale": True})
    from apps.core.cache import AUTH_GENERATION_KEY

    before = cache.get(AUTH_GENERATION_KEY)
    assert _key_client(fresh.plain).get("/api/v1/me").status_code == 200
    assert cache.get(AUTH_GENERATION_KEY) not in (None, before)


@pytest.fixture
def silent_cache(settings):
    """A cache that accepts connections and never answers (a partitioned or frozen Redis), with
    the count of connections it was offered."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    settings.CACHES = {
        "default": {
            **DEAD_CACHE["default"],
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_timeout": 0.3, "socket_connect_timeout": 0.3},
        }
    }
    yield accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_cache_that_stops_answering_is_waited_for_once_not_on_every_request(member, silent_cache):
    _, client = _used_key(member)
    for _ in range(4):
        assert client.get("/api/v1/me").status_code == 200
    # The first request waited for the silent cache and gave up; the others, within the
    # retry delay, went to the database without trying it again.
    assert len(silent_cache) == 1


ARCHER = "/api/v1/admin/archer/jobs"


def _admin_with_used_key() -> tuple[User, APIClient]:
    admin = User.objects.create_user("root@example.com", is_admin=True)
    _, client = _used_key(admin)
    assert client.get(ARCHER).status_code == 200
    return admin, client


def test_an_admin_demoted_in_the_console_loses_admin_rights_at_once_through_a_remembered_key(
    db, django_capture_on_commit_callbacks
):
    demoted, client = _admin_with_used_key()
    console = Client()
    console.force_login(User.objects.create_user("ops@example.com", is_admin=True))
    with django_capture_on_commit_callbacks(execute=True):
        change = console.post(
            f"/admin/accounts/user/{demoted.pk}/change/",
            {"primary_email": demoted.primary_email, "display_name": "", "avatar_url": ""},
        )
    assert change.status_code == 302, change.content
    assert not User.objects.get(pk=demoted.pk).is_admin
    assert client.get(ARCHER).status_code == 403
    assert client.get("/api/v1/me").status_code == 200  # still a user, only no admin


def test_a_user_promoted_by_create_admin_gets_admin_rights_at_once_through_a_remembered_key(
    member, django_capture_on_commit_callbacks
):
    _, client = _used_key(member)
    assert client.get(ARCHER).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        services.user_get_or_create_admin(email=member.primary_email)
    assert client.get(ARCHER).status_code == 200


def test_with_the_cache_down_a_demoted_admin_loses_admin_rights_through_a_remembered_key(
    db, settings
):
    settings.CACHES = DEAD_CACHE
    demoted, client = _admin_with_used_key()
    # Saved with no generation to set (the cache is down): the user is read with the key's row.
    demoted.is_admin = False
    demoted.save()
    assert client.get(ARCHER).status_code == 403


def test_a_revocation_within_the_cache_retry_delay_still_reaches_other_processes(
    member, django_capture_on_commit_callbacks
):
    from apps.core.cache import cache_failed, cache_outage_forget

    created, client = _used_key(member)
    # This process (a console worker, say) failed to reach the cache a moment ago, and the cache
    # is back: the revocation must still reach the shared entry and the generation.
    cache_failed()
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(key=created.key)
    # Another process: nothing remembered locally, the cache reachable.
    cache_outage_forget()
    forget_local_key()
    assert client.get("/api/v1/me").status_code == 401
