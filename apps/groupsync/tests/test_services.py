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
        user=user, provider="google", subject="alice-sub", email=ALICE, email_verified=True
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
        AuditEntry.objects.filter(
            organization_id=org.pk, event="member.role_change", metadata__source="group_sync"
        ).order_by("occurred_at")
    )


def _sync(config, user):
    config.refresh_from_db()
    return services.group_sync_user(config=config, user=user, email=ALICE)


def test_a_person_in_a_mapped_group_joins_with_its_role_and_the_entry_names_the_group(
    google, config, org, alice
):
    google.add(ENG, ALICE)

    _sync(config, alice)

    assert _role(org, alice) == "member"
    [entry] = _sync_entries(org)
    assert entry.metadata["group"] == ENG
    assert entry.changes == {"role": {"before": None, "after": "member"}}
    assert entry.actor_type == "system"
    # One entry for the change, not a second one from the model signals.
    assert not AuditEntry.objects.filter(
        organization_id=org.pk, object_type="orgs.membership", event="resource.create"
    ).exists()


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

    changes = services.group_sync_at_sign_in(user=alice, email=ALICE, workspace_managed=True)

    assert changes == []
    assert _role(org, alice) is None

    google.fail.clear()
    changes = services.group_sync_at_sign_in(user=alice, email=ALICE, workspace_managed=True)

    assert [c.after for c in changes] == ["admin"]
    assert _role(org, alice) == "admin"


def test_sign_in_leaves_organizations_that_are_neither_the_persons_nor_their_domains(
    google, config, org, alice, other_org
):
    GroupRoleMappingFactory(organization=other_org, group_email=ENG, role="admin")
    GroupSyncSettingsFactory(organization=other_org)
    google.add(ENG, ALICE)

    services.group_sync_at_sign_in(user=alice, email=ALICE, workspace_managed=True)

    assert _role(org, alice) is None
    assert _role(other_org, alice) is None
    assert google.requests == []


def test_sign_in_never_raises_even_when_the_stored_key_is_broken(config, org, alice):
    MembershipFactory(organization=org, user=alice, role="viewer")
    config.service_account_key = "{}"
    config.save()

    assert services.group_sync_at_sign_in(user=alice, email=ALICE, workspace_managed=True) == []
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

    assert tasks.sync.delay().get() == 1

    assert _role(org, alice) == "admin"
