"""Group sync against the loopback stand-in of Google: who gets which role, what authoritative
mode takes back, what a failed read leaves alone, and the audit entry naming the group."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from apps.accounts.models import OAuthIdentity
from apps.accounts.tests.factories import UserFactory
from apps.audit.models import AuditEntry
from apps.groupsync import services
from apps.groupsync.models import GroupGrant, GroupSyncSettings
from apps.groupsync.tests.factories import GroupRoleMappingFactory, GroupSyncSettingsFactory
from apps.orgs.models import Membership
from apps.orgs.tests.factories import MembershipFactory

ALICE = "alice@acme.example"
ENG = "eng@acme.example"
LEADS = "leads@acme.example"
OWNERS = "owners@acme.example"


@pytest.fixture
def alice(db):
    user = UserFactory(primary_email=ALICE)
    OAuthIdentity.objects.create(
        user=user,
        provider="google",
        subject="alice-sub",
        email=ALICE,
        email_verified=True,
        hd="acme.example",
    )
    return user


@pytest.fixture
def config(org):
    GroupRoleMappingFactory(organization=org, group_email=ENG, role="member")
    GroupRoleMappingFactory(organization=org, group_email=LEADS, role="admin")
    GroupRoleMappingFactory(organization=org, group_email=OWNERS, role="owner")
    return GroupSyncSettingsFactory(organization=org)


def _authoritative(config) -> None:
    config.mode = GroupSyncSettings.Mode.AUTHORITATIVE
    config.save()


def _role(org, user) -> str | None:
    found = Membership.objects.filter(organization=org, user=user).first()
    return found.role if found else None


def _sync_entries(org) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(organization_id=org.pk, metadata__source="group_sync").order_by(
            "occurred_at"
        )
    )


def _sync(config, user):
    config.refresh_from_db()
    return services.group_sync_user(config=config, user=user, email=ALICE).change


def test_a_person_in_a_mapped_group_joins_with_its_role_and_the_entry_names_the_group(
    google, config, org, alice
):
    google.add(ENG, ALICE)

    _sync(config, alice)

    assert _role(org, alice) == "member"
    [entry] = _sync_entries(org)
    assert entry.event == "resource.create"  # as any other way of adding a member
    assert entry.metadata["group"] == ENG
    assert entry.changes == {"role": {"before": None, "after": "member"}}
    assert entry.actor_type == "system"
    # One entry for the membership, not a second one from the model signals.
    assert (
        AuditEntry.objects.filter(organization_id=org.pk, object_type="orgs.membership").count()
        == 1
    )
    # The bookkeeping of what sync granted names sync as its actor too.
    grant_entries = AuditEntry.objects.filter(object_type="groupsync.groupgrant")
    assert grant_entries.exists()
    assert {(e.actor_type, e.actor_id) for e in grant_entries} == {("system", "group_sync")}


def test_the_highest_role_of_all_the_persons_groups_wins_nested_groups_included(
    google, config, org, alice
):
    google.add(ENG, ALICE)
    google.add("platform@acme.example", ALICE)
    google.add(LEADS, "platform@acme.example")  # Alice leads through a nested group

    _sync(config, alice)

    assert _role(org, alice) == "admin"
    assert _sync_entries(org)[-1].metadata["group"] == LEADS


def test_additive_sync_raises_a_manual_role_and_never_lowers_one(google, config, org, alice):
    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(ENG, ALICE)
    _sync(config, alice)
    assert _role(org, alice) == "member"

    google.members[ENG].clear()
    _sync(config, alice)

    assert _role(org, alice) == "member"
    assert len(_sync_entries(org)) == 1


def test_authoritative_sync_takes_back_what_it_granted_down_to_the_manual_role(
    google, config, org, alice
):
    _authoritative(config)
    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(LEADS, ALICE)
    _sync(config, alice)
    assert _role(org, alice) == "admin"

    google.members[LEADS].clear()
    google.add(ENG, ALICE)
    _sync(config, alice)
    assert _role(org, alice) == "member"

    google.members[ENG].clear()
    _sync(config, alice)
    assert _role(org, alice) == "viewer"  # the role a person gave her stays
    assert not GroupGrant.objects.exists()
    changes = [(e.changes["role"]["after"], e.metadata["group"]) for e in _sync_entries(org)]
    assert changes == [("admin", LEADS), ("member", ENG), ("viewer", ENG)]


def test_authoritative_sync_removes_a_membership_it_created(google, config, org, alice):
    _authoritative(config)
    google.add(ENG, ALICE)
    _sync(config, alice)
    assert _role(org, alice) == "member"

    google.members[ENG].clear()
    _sync(config, alice)

    assert _role(org, alice) is None
    entry = _sync_entries(org)[-1]
    assert entry.event == "resource.delete"
    assert entry.changes == {"role": {"before": "member", "after": None}}
    assert entry.metadata["group"] == ENG


def test_authoritative_sync_leaves_a_role_someone_changed_by_hand(google, config, org, alice):
    _authoritative(config)
    google.add(ENG, ALICE)
    _sync(config, alice)
    Membership.objects.filter(organization=org, user=alice).update(role="admin")

    google.members[ENG].clear()
    _sync(config, alice)

    assert _role(org, alice) == "admin"
    assert not GroupGrant.objects.exists()


def test_authoritative_sync_never_removes_the_last_owner(google, config, org, alice):
    _authoritative(config)
    google.add(OWNERS, ALICE)
    _sync(config, alice)
    assert _role(org, alice) == "owner"

    google.members[OWNERS].clear()
    _sync(config, alice)

    assert _role(org, alice) == "owner"


def test_authoritative_sync_demotes_an_owner_it_granted_when_another_owner_remains(
    google, config, org, alice, owner
):
    _authoritative(config)
    google.add(OWNERS, ALICE)
    _sync(config, alice)

    google.members[OWNERS].clear()
    google.add(ENG, ALICE)
    _sync(config, alice)

    assert _role(org, alice) == "member"
    assert _role(org, owner) == "owner"


@pytest.mark.parametrize(
    "fault", [{"cloud_identity": 500}, {"cloud_identity": 403, "directory": 503}]
)
def test_a_failed_read_changes_nothing_even_in_authoritative_mode(
    google, config, org, alice, fault
):
    _authoritative(config)
    google.add(LEADS, ALICE)
    _sync(config, alice)
    before = AuditEntry.objects.count()

    google.fail.update(fault)
    with pytest.raises(services.clients.GroupsReadError):
        _sync(config, alice)

    assert _role(org, alice) == "admin"
    assert GroupGrant.objects.get().role == "admin"
    assert AuditEntry.objects.count() == before


def test_the_schedule_syncs_every_member_and_records_the_outcome(google, config, org, alice, owner):
    _authoritative(config)
    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(ENG, ALICE)

    assert services.group_sync_all() == 1

    assert _role(org, alice) == "member"
    assert _role(org, owner) == "owner"  # no Google identity: not read, not touched
    config.refresh_from_db()
    assert (config.last_sync_status, config.last_sync_error) == ("ok", "")


def test_a_failing_read_in_the_schedule_is_recorded_without_its_details_and_changes_nothing(
    google, config, org, alice
):
    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(ENG, ALICE)
    google.fail["cloud_identity"] = 500

    assert services.group_sync_all() == 0

    assert _role(org, alice) == "viewer"
    config.refresh_from_db()
    assert config.last_sync_status == "failed"
    assert config.last_sync_error == "Cloud Identity answered 500"


def test_sign_in_syncs_the_orgs_of_the_verified_domain_and_grants_nothing_on_failure(
    google, config, org, alice
):
    from django.utils import timezone

    org.domain, org.domain_verified_at = "acme.example", timezone.now()
    org.save()
    google.add(LEADS, ALICE)
    google.fail["token"] = 503

    changes = services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example")

    assert changes == []
    assert _role(org, alice) is None

    google.fail.clear()
    changes = services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example")

    assert [c.after for c in changes] == ["admin"]
    assert _role(org, alice) == "admin"


def test_sign_in_leaves_organizations_that_are_neither_the_persons_nor_their_domains(
    google, config, org, alice, other_org
):
    GroupRoleMappingFactory(organization=other_org, group_email=ENG, role="admin")
    GroupSyncSettingsFactory(organization=other_org)
    google.add(ENG, ALICE)

    services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example")

    assert _role(org, alice) is None
    assert _role(other_org, alice) is None
    assert google.requests == []


def test_sign_in_never_raises_even_when_the_stored_key_is_broken(config, org, alice):
    MembershipFactory(organization=org, user=alice, role="viewer")
    config.service_account_key = "{}"
    config.save()

    assert services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example") == []
    assert _role(org, alice) == "viewer"


def test_the_schedule_exists_in_beat_after_migrating(db):
    task = PeriodicTask.objects.get(name="groupsync-sync")
    assert task.task == "groupsync.sync"
    assert (task.interval.every, task.interval.period) == (60, "minutes")
    assert task.queue == "maintenance"


def test_the_scheduled_task_runs_the_sync(google, config, org, alice):
    from apps.groupsync import tasks

    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(LEADS, ALICE)

    assert tasks.sync.delay().get() == 1  # one organization's run queued (and, eagerly, run)

    assert _role(org, alice) == "admin"


def test_authoritative_sync_keeps_a_nested_groups_role_when_only_direct_groups_can_be_read(
    google, config, org, alice, owner
):
    _authoritative(config)
    google.add("platform@acme.example", ALICE)
    google.add(OWNERS, "platform@acme.example")  # owner only through a nested group
    _sync(config, alice)
    assert _role(org, alice) == "owner"
    before = AuditEntry.objects.count()

    google.fail["cloud_identity"] = 403  # the Directory API answers, direct groups only
    assert services.group_sync_all() == 0

    assert _role(org, alice) == "owner"
    assert GroupGrant.objects.get().role == "owner"
    assert AuditEntry.objects.count() == before
    config.refresh_from_db()
    assert config.last_sync_status == "degraded"


def test_the_direct_only_fallback_still_raises_roles(google, config, org, alice):
    _authoritative(config)
    google.fail["cloud_identity"] = 404
    google.add(LEADS, ALICE)

    _sync(config, alice)

    assert _role(org, alice) == "admin"


def test_the_schedule_reads_the_address_of_the_identity_the_orgs_workspace_manages(
    google, config, org, alice
):
    MembershipFactory(organization=org, user=alice, role="viewer")
    # Alice also linked a consumer Google account (no hd) later; it is not read.
    OAuthIdentity.objects.create(
        user=alice, provider="google", subject="alice-gmail", email="alice.p@gmail.example"
    )
    google.add(ENG, ALICE)

    assert services.group_sync_all() == 1

    assert _role(org, alice) == "member"
    looked_up = {q["query"][0].split("'")[1] for _, q in google.requests}
    assert looked_up == {ALICE}


def test_a_consumer_account_carrying_a_workspace_address_is_never_synced(google, config, org):
    from django.utils import timezone

    org.domain, org.domain_verified_at = "acme.example", timezone.now()
    org.save()
    mallory = UserFactory(primary_email=ALICE)
    OAuthIdentity.objects.create(user=mallory, provider="google", subject="c", email=ALICE, hd="")
    MembershipFactory(organization=org, user=mallory, role="viewer")
    google.add(OWNERS, ALICE)

    assert services.group_sync_at_sign_in(user=mallory, email=ALICE, hd="") == []
    assert services.group_sync_all() == 0

    assert _role(org, mallory) == "viewer"
    assert google.requests == []


def test_another_workspaces_account_is_not_synced_with_this_workspaces_groups(
    google, config, org, alice
):
    MembershipFactory(organization=org, user=alice, role="viewer")
    OAuthIdentity.objects.filter(user=alice).update(hd="other.example")
    google.add(LEADS, ALICE)

    assert services.group_sync_at_sign_in(user=alice, email=ALICE, hd="other.example") == []

    assert _role(org, alice) == "viewer"


def test_a_sign_in_waits_for_groups_no_longer_than_its_budget_across_organizations(
    google, settings, alice, org
):
    import time

    from apps.orgs.tests.factories import OrganizationFactory

    settings.GROUP_SYNC_SIGN_IN_SECONDS = 0.5
    google.delay_seconds = 1.5  # each read would take 1.5 s (the timeout is 2 s)
    for each in (org, OrganizationFactory(), OrganizationFactory()):
        GroupRoleMappingFactory(organization=each, group_email=LEADS, role="admin")
        GroupSyncSettingsFactory(organization=each)
        MembershipFactory(organization=each, user=alice, role="viewer")
    google.add(LEADS, ALICE)

    started = time.monotonic()
    changes = services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example")
    took = time.monotonic() - started

    assert took < 1.0
    assert changes == []
    assert set(Membership.objects.filter(user=alice).values_list("role", flat=True)) == {"viewer"}


def test_an_unexpected_failure_in_one_organization_does_not_stop_the_others(
    google, config, org, alice, other_org
):
    MembershipFactory(organization=org, user=alice, role="viewer")
    MembershipFactory(organization=other_org, user=alice, role="viewer")
    GroupRoleMappingFactory(organization=other_org, group_email=ENG, role="member")
    other = GroupSyncSettingsFactory(organization=other_org)
    google.add(ENG, ALICE)

    def reader(config, email, deadline):
        if config.organization_id == org.pk:
            raise RuntimeError("something nobody expected")
        return services.groups_read(config, email, deadline)

    services.group_sync_all(reader=reader)

    assert _role(other_org, alice) == "member"
    config.refresh_from_db()
    other.refresh_from_db()
    assert (config.last_sync_status, config.last_sync_error) == ("failed", "RuntimeError")
    assert other.last_sync_status == "ok"


def test_sync_locks_the_owner_rows_in_primary_key_order(google, config, org, alice, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    google.add(ENG, ALICE)
    with CaptureQueriesContext(connection) as queries:
        _sync(config, alice)

    [lock] = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"] and "'owner'" in q["sql"]]
    # By primary key, as every other writer of memberships locks them (creation time can tie).
    assert 'ORDER BY "orgs_membership"."id" ASC' in lock


def test_a_renamed_workspace_address_is_read_by_its_new_name_after_the_next_sign_in(
    google, config, org, alice
):
    from apps.accounts.sso import user_from_identity

    MembershipFactory(organization=org, user=alice, role="viewer")
    # The admin renamed Alice to alice.smith@; her old address now belongs to someone else,
    # who is in the leads group.
    google.add(LEADS, ALICE)
    google.add(ENG, "alice.smith@acme.example")

    user = user_from_identity(
        provider="google",
        subject="alice-sub",
        email="alice.smith@acme.example",
        name="Alice",
        hd="acme.example",
    )
    assert user == alice
    services.group_sync_all()

    assert _role(org, alice) == "member"  # her groups, not the old address's new holder's
    identity = OAuthIdentity.objects.get(subject="alice-sub")
    assert (identity.email, identity.hd) == ("alice.smith@acme.example", "acme.example")


@pytest.fixture
def bob(db):
    user = UserFactory(primary_email="bob@acme.example")
    OAuthIdentity.objects.create(
        user=user, provider="google", subject="bob-sub", email=user.primary_email, hd="acme.example"
    )
    return user


def test_the_schedule_asks_google_for_one_token_per_organization_not_one_per_person(
    google, config, org, alice, bob
):
    from apps.groupsync import clients

    clients._TOKENS.clear()
    MembershipFactory(organization=org, user=alice, role="viewer")
    MembershipFactory(organization=org, user=bob, role="viewer")
    google.add(ENG, ALICE, "bob@acme.example")

    assert services.group_sync_all() == 2
    assert services.group_sync_all() == 0

    assert len(google.assertions) == 1
    clients._TOKENS.clear()


def test_a_rate_limited_organization_stops_its_run_and_is_recorded_as_failed(
    google, config, org, alice, bob
):
    MembershipFactory(organization=org, user=alice, role="viewer")
    MembershipFactory(organization=org, user=bob, role="viewer")
    google.add(ENG, ALICE, "bob@acme.example")
    google.fail["cloud_identity"] = 429

    services.group_sync_all()

    assert len(google.requests) == 1  # no second person read into the limit
    config.refresh_from_db()
    assert config.last_sync_status == "failed"
    assert "rate limited" in config.last_sync_error


def test_a_run_is_skipped_while_the_same_organizations_run_is_still_going(
    google, config, org, alice
):
    from django.core.cache import cache

    from apps.groupsync import tasks

    MembershipFactory(organization=org, user=alice, role="viewer")
    google.add(ENG, ALICE)
    cache.add(services._lock_key(org.pk), 1, timeout=60)
    try:
        assert tasks.sync_organization.delay(str(config.pk)).get() is None
        assert _role(org, alice) == "viewer"
        assert google.requests == []
    finally:
        cache.delete(services._lock_key(org.pk))

    assert tasks.sync_organization.delay(str(config.pk)).get() == 1
    assert _role(org, alice) == "member"


def test_the_longest_unsynced_organization_is_synced_first(config, other_org):
    from datetime import timedelta

    from django.utils import timezone

    other = GroupSyncSettingsFactory(organization=other_org)
    GroupSyncSettings.objects.filter(pk=config.pk).update(last_sync_at=timezone.now())
    GroupSyncSettings.objects.filter(pk=other.pk).update(
        last_sync_at=timezone.now() - timedelta(hours=5)
    )
    never = GroupSyncSettingsFactory()

    assert services.group_sync_due() == [never.pk, other.pk, config.pk]


def test_a_failed_read_at_sign_in_shows_on_the_organizations_settings(google, config, org, alice):
    MembershipFactory(organization=org, user=alice, role="viewer")
    google.fail["cloud_identity"] = 500

    assert services.group_sync_at_sign_in(user=alice, email=ALICE, hd="acme.example") == []

    config.refresh_from_db()
    assert config.last_sync_status == "failed"
    assert config.last_sync_error == "at a sign-in: Cloud Identity answered 500"


def test_a_group_address_with_a_look_alike_letter_is_refused_not_folded_to_ascii(org):
    from apps.core.api.errors import APIError

    # U+212A KELVIN SIGN lower-cases to an ASCII "k": "\u212aeys@" would be stored as keys@.
    with pytest.raises(APIError) as refused:
        services.group_mapping_create(
            organization_id=org.pk, group_email="\u212aeys@acme.example", role="member"
        )

    assert refused.value.status_code == 400
    assert "group_email" in refused.value.message
