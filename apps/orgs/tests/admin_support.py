"""Helpers for console tests: one of everything in an organization, and a change form's data as
the browser would post it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.test import Client

from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import ClusterNodePool, NodePoolServer
from apps.clusters.tests.factories import (
    ActionFactory,
    AnnotationFactory,
    ClusterFactory,
    ClusterMetadataFactory,
    ClusterRunFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.jobs.models import JobRun
from apps.orgs.models import Membership, Organization
from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services as webhook_services


@dataclass
class World:
    """One object of every org-owned model, all in `organization`."""

    organization: Organization
    objects: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.objects[name]


def build_world(organization: Organization, tag: str) -> World:
    """Everything an operator meets in the console, for one organization. `tag` keeps names
    (and e-mail addresses) distinct between worlds."""
    from apps.dns.tests.factories import DomainFactory, RecordSetFactory
    from apps.groupsync.tests.factories import GroupRoleMappingFactory, GroupSyncSettingsFactory

    org = organization
    key = SSHKeyFactory(organization=org, name=f"key-{tag}")
    worker = ServerFactory(organization=org, ssh_key=key, hostname=f"worker-{tag}")
    bastion = ServerFactory(
        organization=org,
        ssh_key=key,
        hostname=f"bastion-{tag}",
        role=Server.Role.BASTION,
        public_ip_address="198.51.100.7",
    )
    credential = CredentialFactory(organization=org, name=f"aws-{tag}")
    domain = DomainFactory(organization=org, credential=credential, domain_name=f"{tag}.example")
    record_set = RecordSetFactory(domain=domain, name=f"api-{tag}")
    lb = LoadBalancerFactory(organization=org, name=f"lb-{tag}")
    label = LabelFactory(organization=org, key=f"example.com/{tag}")
    annotation = AnnotationFactory(organization=org, key=f"example.com/note-{tag}")
    taint = TaintFactory(organization=org, key=f"dedicated-{tag}")
    pool = NodePoolFactory(organization=org, name=f"pool-{tag}")
    NodePoolServer.objects.create(organization=org, node_pool=pool, server=worker)
    cluster = ClusterFactory(organization=org, name=f"cluster-{tag}", bastion_server=bastion)
    ClusterNodePool.objects.create(organization=org, cluster=cluster, node_pool=pool)
    metadata = ClusterMetadataFactory(cluster=cluster, key=f"meta-{tag}")
    run = ClusterRunFactory(cluster=cluster, action_ref=ActionFactory(label=f"Action {tag}"))
    person = UserFactory(primary_email=f"person-{tag}@example.com")
    membership = MembershipFactory(user=person, organization=org, role=Membership.Role.MEMBER)
    org_key = account_services.api_key_create_for_org(organization=org, name=f"key-{tag}").key
    job = JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=bastion.pk,
    )
    endpoint, _ = webhook_services.webhook_endpoint_create(
        organization=org, url=f"https://hooks.{tag}.example/autoglue", description=f"hook-{tag}"
    )
    delivery = webhook_services.webhook_test_send(endpoint=endpoint)
    return World(
        organization=org,
        objects={
            "organization": org,
            "sshkey": key,
            "server": worker,
            "bastion": bastion,
            "credential": credential,
            "domain": domain,
            "recordset": record_set,
            "loadbalancer": lb,
            "label": label,
            "annotation": annotation,
            "taint": taint,
            "nodepool": pool,
            "cluster": cluster,
            "clustermetadata": metadata,
            "clusterrun": run,
            "membership": membership,
            "apikey": org_key,
            "user": person,
            "jobrun": job,
            "groupsyncsettings": GroupSyncSettingsFactory(organization=org),
            "grouprolemapping": GroupRoleMappingFactory(
                organization=org, group_email=f"team-{tag}@{tag}.example"
            ),
            "webhookendpoint": endpoint,
            "webhookdelivery": delivery,
        },
    )


def console_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_of(organization: Organization, role: str = "owner", email: str = "") -> User:
    """A person whose only organization is `organization`, with `role` there."""
    user = UserFactory(primary_email=email or f"{role}-{organization.pk.hex[:8]}@example.com")
    MembershipFactory(user=user, organization=organization, role=role)
    return user


def _put(data: dict[str, Any], form: forms.BaseForm) -> None:
    for name, bound_field in form.fields.items():
        key = form.add_prefix(name)
        value = form[name].value()
        widget = bound_field.widget
        if isinstance(widget, forms.MultiWidget):
            parts = widget.decompress(value) if not isinstance(value, list) else value
            for index, part in enumerate(parts):
                data[f"{key}_{index}"] = "" if part is None else str(part)
        elif isinstance(bound_field, forms.BooleanField):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        elif isinstance(value, dict):
            data[key] = json.dumps(value)
        else:
            data[key] = "" if value is None else str(value)


def form_data(response: Any) -> dict[str, Any]:
    """The change (or add) form of `response` as the browser would post it unchanged, with
    every inline's management form and rows."""
    data: dict[str, Any] = {}
    _put(data, response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        _put(data, formset.management_form)
        for row in formset.forms:
            _put(data, row)
    return data


def add_inline_row(data: dict[str, Any], prefix: str, **values: Any) -> None:
    """Append a new row to an inline formset's posted data."""
    total = int(data[f"{prefix}-TOTAL_FORMS"])
    for name, value in values.items():
        data[f"{prefix}-{total}-{name}"] = str(value)
    data[f"{prefix}-TOTAL_FORMS"] = str(total + 1)


def form_errors(response: Any) -> str:
    """Every error the page shows (main form, inlines), as one string to assert on."""
    assert response.status_code == 200, response.status_code
    errors = [str(response.context["adminform"].form.errors)]
    for inline in response.context["inline_admin_formsets"]:
        errors.append(str(inline.formset.errors))
        errors.append(str(inline.formset.non_form_errors()))
    return " ".join(errors)
