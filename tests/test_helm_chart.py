"""The Helm chart (deploy/helm/autoglue), checked offline as CI can: yamllint, Helm's own lint in
strict mode, renders for install and upgrade with the defaults and every ci/*-values.yaml, each
rendered manifest validated strictly against the official schemas of the lowest and highest
Kubernetes versions the chart claims, then what an operator relies on, read off the objects.

No cluster runs here: these prove the chart renders valid objects of the right shape, not that
a cluster runs them (docs/kubernetes.md says so)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError
from yamllint import linter
from yamllint.config import YamlLintConfig

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "autoglue"
# The lowest (Chart.yaml's kubeVersion floor) and the highest version the chart is checked on.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
VALUES_FILES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
CASES = ["defaults", *VALUES_FILES]
# Custom resources have no schema in kubernetes-validate; the tests below check their shape.
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}
CANARY = "CANARY"
# The chart's defaults plus the one value it cannot default: the image the operator pushed.
REQUIRED = {"image": {"repository": "registry.example.com/autoglue"}}


def _values(case: str) -> dict[str, Any]:
    if case == "defaults":
        return json.loads(json.dumps(REQUIRED))
    return yaml.safe_load((CHART / "ci" / case).read_text()) or {}


def _render(values: dict[str, Any], *, upgrade: bool = False) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    rendered = chart.render(
        values,
        name="autoglue",
        namespace="autoglue",
        revision=2 if upgrade else 1,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )
    objects = []
    for text in rendered.values():
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


@pytest.fixture(scope="module", params=CASES)
def case(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def rendered(case) -> list[dict[str, Any]]:
    return _render(_values(case))


def test_the_charts_yaml_files_pass_yamllint():
    config = YamlLintConfig(file=str(CHART.parent / "yamllint.yaml"))
    # files/prometheus-rules.yaml is the project's alert rules, checked by promtool where they live.
    files = [CHART / "Chart.yaml", CHART / "values.yaml", *CHART.glob("ci/*.yaml")]
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}: {p.message}"
        for path in files
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert not problems, "\n".join(problems)


def test_the_chart_claims_the_lowest_version_it_is_checked_on():
    claimed = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    assert claimed == f">={KUBE_VERSIONS[0]}-0"
    assert kubernetes_validate.utils.latest_version().startswith(KUBE_VERSIONS[-1][:4])


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_helm_lint_in_strict_mode_finds_nothing(case, kube_version):
    report = helm.lint(CHART, _values(case), strict=True, kube_version=f"v{kube_version}")
    # Severity 1 is information ("icon is recommended"); warnings and errors fail strict lint.
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not findings, report


@pytest.mark.parametrize("upgrade", [False, True], ids=["install", "upgrade"])
def test_every_rendered_manifest_is_valid_for_each_kubernetes_version(case, upgrade):
    objects = _render(_values(case), upgrade=upgrade)
    assert {o["kind"] for o in objects} >= {"Deployment", "Job", "Service", "ServiceAccount"}
    for version in KUBE_VERSIONS:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except SchemaNotFoundError:
                assert (obj["apiVersion"], obj["kind"]) in CRDS, obj["kind"]
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                name = f"{obj['kind']}/{obj['metadata']['name']}"
                pytest.fail(f"{name} on {version}: {where}: {exc.message}")


def test_beat_is_exactly_one_replica_replaced_with_recreate(rendered):
    beat = _by_kind(rendered, "Deployment")["autoglue-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    names = set(_by_kind(rendered, "HorizontalPodAutoscaler")) | set(
        _by_kind(rendered, "PodDisruptionBudget")
    )
    assert "autoglue-beat" not in names


def test_the_migration_job_is_a_hook_that_runs_before_the_deployments(rendered):
    job = _by_kind(rendered, "Job")["autoglue-migrate"]
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    # Helm applies hooks before the release's other objects and waits for them; the Deployments
    # must therefore not be hooks themselves.
    for name, deployment in _by_kind(rendered, "Deployment").items():
        assert "helm.sh/hook" not in deployment["metadata"].get("annotations", {}), name
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "/app/docker/setup.sh"]
    setup = (ROOT / "docker" / "setup.sh").read_text()
    assert "manage.py migrate --noinput" in setup and "manage.py keys ensure" in setup
    # Under an advisory lock: a second Job waits instead of migrating alongside the first.
    assert 'exec python manage.py run_locked setup -- sh "$0" --locked' in setup
    # A Secret the Job reads is itself a hook applied first (lower weight).
    for secret in _by_kind(rendered, "Secret").values():
        annotations = secret["metadata"]["annotations"]
        assert int(annotations["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])


def test_the_first_admin_is_created_only_when_asked_and_only_while_none_exists():
    setup = (ROOT / "docker" / "setup.sh").read_text()
    assert setup.count("create_admin") == 2 and setup.count("--if-no-admin") == 2
    plain = _by_kind(_render(_values("defaults")), "Job")["autoglue-migrate"]
    env = {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "AUTOGLUE_ADMIN_EMAIL" not in env
    asked = _by_kind(_render(_values("production-values.yaml")), "Job")["autoglue-migrate"]
    env_values = {
        e["name"]: e.get("value") for e in asked["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env_values["AUTOGLUE_ADMIN_EMAIL"] == "admin@example.com"
    assert env_values["AUTOGLUE_ADMIN_PASSWORD_FILE"] == "/run/secrets/admin/password"


def test_every_container_runs_with_the_restricted_security_context(rendered):
    for where, spec in _pod_specs(rendered).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, where  # noqa: S108 - the writable scratch directory


def test_every_long_running_container_has_probes_for_its_role(rendered):
    deployments = _by_kind(rendered, "Deployment")
    assert set(deployments) == {
        "autoglue-web",
        "autoglue-worker",
        "autoglue-ssh-worker",
        "autoglue-webhooks-worker",
        "autoglue-beat",
    }
    web = deployments["autoglue-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/api/v1/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/api/v1/readyz"
    # Django answers only the hosts it serves; probes (and scrapes) address the pod by its IP,
    # which is therefore one of them, defined before the variable that uses it.
    names = [e["name"] for e in web["env"]]
    pod_ip = web["env"][names.index("POD_IP")]
    hosts = web["env"][names.index("DJANGO_ALLOWED_HOSTS")]
    assert pod_ip["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert names.index("POD_IP") < names.index("DJANGO_ALLOWED_HOSTS")
    assert hosts["value"].split(",")[0] == "$(POD_IP)"
    for role in ("worker", "ssh-worker", "webhooks-worker", "beat"):
        container = deployments[f"autoglue-{role}"]["spec"]["template"]["spec"]["containers"][0]
        probe = container["livenessProbe"]["exec"]["command"]
        # Liveness is local (a heartbeat or tick file's age), never a round trip to the broker.
        assert probe == ["python", "/app/docker/healthcheck.py"], role
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["AUTOGLUE_ROLE"] == ("beat" if role == "beat" else "worker"), role
        if role != "beat":
            startup = container["startupProbe"]["exec"]["command"]
            assert startup == ["python", "/app/docker/healthcheck.py", "startup"], role


def test_the_roles_run_the_same_commands_as_the_compose_stack_and_the_image():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    deployments = _by_kind(_render(_values("defaults")), "Deployment")
    for role in ("worker", "ssh-worker", "webhooks-worker", "beat"):
        container = deployments[f"autoglue-{role}"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == compose[role]["command"], role
        # The role's own variables, as compose gives them (the webhooks worker's connections).
        env = {e["name"]: e.get("value") for e in container["env"]}
        shared = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["environment"]
        for name, value in compose[role]["environment"].items():
            if name not in shared:
                assert env[name] == str(value), (role, name)
    web = deployments["autoglue-web"]["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in web and "args" not in web  # the image's CMD, as in compose
    assert "command" not in compose["web"]
    assert compose["setup"]["command"] == ["sh", "/app/docker/setup.sh"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^CMD \["gunicorn", "-c", "autoglue/gunicorn_conf.py"', dockerfile, re.M)


def test_no_secret_value_is_rendered_when_existing_secrets_are_given():
    values = _values("production-values.yaml")
    objects = _render(values)
    text = json.dumps(objects)
    assert CANARY not in text
    assert not _by_kind(objects, "Secret")
    web = _by_kind(objects, "Deployment")["autoglue-web"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in web["containers"][0]["env"]}
    assert env["DATABASE_URL_FILE"] == "/run/secrets/autoglue/DATABASE_URL"
    assert "DATABASE_URL" not in env and "AUTOGLUE_MASTER_KEYS" not in env
    sources = web["volumes"][0]["projected"]["sources"]
    assert {
        "name": "autoglue-master-keys",
        "items": [{"key": "keys", "path": "AUTOGLUE_MASTER_KEYS"}],
    } in [s["secret"] for s in sources]


def test_secrets_given_by_value_stay_in_the_charts_own_secret():
    objects = _render(_values("inline-secrets-values.yaml"))
    secrets = _by_kind(objects, "Secret")
    assert list(secrets) == ["autoglue-secrets"]
    for obj in objects:
        if obj["kind"] != "Secret":
            assert CANARY not in json.dumps(obj), obj["kind"]


def test_a_missing_required_secret_stops_the_render_with_its_name():
    values = _values("defaults")
    values["secrets"] = {"redisUrl": {"existingSecret": "", "key": "REDIS_URL", "value": ""}}
    with pytest.raises(helm.HelmError, match=r"secrets\.redisUrl"):
        _render(values)


def test_the_image_and_its_tag_come_from_values():
    default = _render(_values("defaults"))
    for spec in _pod_specs(default).values():
        chart_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
        assert spec["containers"][0]["image"] == f"registry.example.com/autoglue:{chart_version}"
    pinned = _render(_values("production-values.yaml"))
    for spec in _pod_specs(pinned).values():
        assert spec["containers"][0]["image"] == "registry.example.com/autoglue:2026.12.1"
    digest = _render(_values("gateway-values.yaml"))
    for spec in _pod_specs(digest).values():
        assert spec["containers"][0]["image"].startswith("registry.example.com/autoglue@sha256:0")


def test_autoscaled_roles_leave_replicas_to_the_hpa_and_keep_a_disruption_budget():
    objects = _render(_values("production-values.yaml"))
    hpas = _by_kind(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == {"autoglue-web", "autoglue-worker", "autoglue-webhooks-worker"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert "replicas" not in _by_kind(objects, "Deployment")[name]["spec"]
    assert set(_by_kind(objects, "PodDisruptionBudget")) == {*hpas, "autoglue-ssh-worker"}


def test_the_network_policy_allows_only_database_redis_dns_ssh_and_https_out():
    objects = _render(_values("production-values.yaml"))
    policy = _by_kind(objects, "NetworkPolicy")["autoglue"]
    ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    # 2222: the values' extraEgress rule, added as given.
    assert ports == {53, 5432, 6379, 22, 443, 2222}
    database = next(r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 5432)
    assert database["to"] == [
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "redis"}}},
    ]


def test_the_webhooks_worker_reaches_receivers_but_not_the_metadata_service_or_private_ranges():
    values = _values("production-values.yaml")
    values["networkPolicy"].pop("webhookDeniedCIDRs", None)  # the chart's defaults
    policy = _by_kind(_render(values), "NetworkPolicy")["autoglue-webhooks-worker"]
    [rule] = policy["spec"]["egress"]
    assert {p["port"] for p in rule["ports"]} == {443, 8443}
    v4, v6 = (peer["ipBlock"] for peer in rule["to"])
    assert (v4["cidr"], v6["cidr"]) == ("0.0.0.0/0", "::/0")
    assert "169.254.0.0/16" in v4["except"]  # 169.254.169.254, the metadata service
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"} <= set(v4["except"])
    assert {"fe80::/10", "fc00::/7", "::1/128"} <= set(v6["except"])

    # An operator with receivers on a private network keeps only the link-local ranges out.
    values["networkPolicy"]["webhookDeniedCIDRs"] = ["169.254.0.0/16", "fe80::/10"]
    policy = _by_kind(_render(values), "NetworkPolicy")["autoglue-webhooks-worker"]
    v4, v6 = (peer["ipBlock"] for peer in policy["spec"]["egress"][0]["to"])
    assert (v4["except"], v6["except"]) == (["169.254.0.0/16"], ["fe80::/10"])


def test_metrics_are_scraped_with_the_bearer_token_from_its_secret():
    objects = _render(_values("production-values.yaml"))
    monitors = _by_kind(objects, "ServiceMonitor")
    roles = ("web", "worker", "ssh-worker", "webhooks-worker", "beat")
    assert set(monitors) == {f"autoglue-{r}" for r in roles}
    for name, monitor in monitors.items():
        endpoint = monitor["spec"]["endpoints"][0]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] == ("http" if name == "autoglue-web" else "metrics")
        assert endpoint["bearerTokenSecret"] == {"name": "autoglue-app", "key": "metrics-token"}
    worker = _by_kind(objects, "Deployment")["autoglue-worker"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    assert env["METRICS_PORT"] == "9100" and env["METRICS_TOKEN_FILE"]
    rule = next(iter(_by_kind(objects, "PrometheusRule").values()))
    shipped = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())["groups"]
    assert rule["spec"]["groups"] == shipped and shipped[0]["rules"]


def test_the_chart_ships_the_projects_own_alert_rules():
    project = ROOT / "deploy" / "observability" / "alerts.yml"
    shipped = CHART / "files" / "prometheus-rules.yaml"
    if not project.exists():
        pytest.skip("no project alert rules yet (deploy/observability/alerts.yml)")
    # One set of rules: when they change, copy the file over (the chart cannot read outside
    # its own folder).
    assert yaml.safe_load(shipped.read_text()) == yaml.safe_load(project.read_text()), (
        f"cp {project.relative_to(ROOT)} {shipped.relative_to(ROOT)}"
    )


def test_the_gateway_route_and_the_ingress_send_traffic_to_the_web_service():
    gateway = _render(_values("gateway-values.yaml"))
    route = next(iter(_by_kind(gateway, "HTTPRoute").values()))
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "autoglue-web"
    ingress = next(iter(_by_kind(_render(_values("production-values.yaml")), "Ingress").values()))
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "autoglue-web", "port": {"name": "http"}}


def test_the_values_schema_refuses_a_misspelt_or_mistyped_value():
    chart = helm.Chart.load(CHART)
    chart.validate_schema(REQUIRED)
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"web": {"replicas": "two"}})
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"wrker": {}})


def _container(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    workload = {**_by_kind(objects, "Deployment"), **_by_kind(objects, "Job")}[name]
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_an_aws_secret_key_reaches_boto3_as_its_own_variable_by_reference():
    objects = _render(_values("production-values.yaml"))
    for name in ("autoglue-worker", "autoglue-migrate"):
        env = {e["name"]: e for e in _container(objects, name)["env"]}
        # botocore reads AWS_SECRET_ACCESS_KEY, not a _FILE variant.
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "autoglue-aws", "key": "secret-access-key"}
        }
        assert "AWS_SECRET_ACCESS_KEY_FILE" not in env
        assert "value" not in env["AWS_SECRET_ACCESS_KEY"]
    # Extra secrets without asEnv stay files read through NAME_FILE.
    values = _values("production-values.yaml")
    values["secrets"]["extra"] = [{"name": "SOME_TOKEN", "existingSecret": "s", "key": "k"}]
    env = {e["name"]: e.get("value") for e in _container(_render(values), "autoglue-web")["env"]}
    assert env["SOME_TOKEN_FILE"] == "/run/secrets/autoglue/SOME_TOKEN" and "SOME_TOKEN" not in env


def test_metrics_scrapers_may_reach_the_web_port_through_the_network_policy():
    objects = _render(_values("production-values.yaml"))
    policy = next(iter(_by_kind(objects, "NetworkPolicy").values()))
    scrapers = _values("production-values.yaml")["networkPolicy"]["metricsFrom"]
    allowed = [
        rule["from"] for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 8080
    ]
    assert scrapers in allowed
    values = _values("production-values.yaml")
    values["metrics"] = {"enabled": False}
    values["networkPolicy"]["metricsFrom"] = scrapers
    policy = next(iter(_by_kind(_render(values), "NetworkPolicy").values()))
    assert [r["from"] for r in policy["spec"]["ingress"]] == [values["networkPolicy"]["webFrom"]]


def test_the_ssh_worker_never_stops_mid_job_on_its_own():
    from django.conf import settings

    budget = max(
        settings.CLUSTER_ACTION_TIMEOUT_SECONDS, settings.BASTION_BOOTSTRAP_TIMEOUT_SECONDS
    )
    values = _values("defaults")
    values["sshWorker"] = {"autoscaling": {"enabled": True}}
    objects = _render(values)
    hpa = _by_kind(objects, "HorizontalPodAutoscaler")["autoglue-ssh-worker"]
    assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"
    pod = _by_kind(objects, "Deployment")["autoglue-ssh-worker"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= budget


def test_a_scale_range_upside_down_stops_the_render_with_its_name():
    values = _values("defaults")
    values["worker"] = {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}
    with pytest.raises(helm.HelmError, match=r"worker\.autoscaling: minReplicas \(5\)"):
        _render(values)


def test_the_migration_job_follows_the_scheduling_and_sidecar_values():
    values = _values("production-values.yaml")
    values["migrations"] |= {
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
    }
    job = _by_kind(_render(values), "Job")["autoglue-migrate"]["spec"]["template"]
    assert job["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert job["spec"]["nodeSelector"] == {"pool": "system"}
    assert job["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert job["spec"]["affinity"] == {"nodeAffinity": {}}


def test_an_install_without_an_image_repository_is_refused():
    chart = helm.Chart.load(CHART)
    with pytest.raises(helm.HelmValuesError, match="repository"):
        chart.validate_schema({})
    # The chart's default is empty, so a plain install stops before anything is applied.
    with pytest.raises(helm.HelmError, match="/image/repository"):
        _render({})


def test_a_stopping_web_pod_keeps_serving_then_drains_within_its_grace_period():
    dockerfile = (ROOT / "Dockerfile").read_text()
    graceful = int(re.search(r'"--graceful-timeout", "(\d+)"', dockerfile).group(1))
    for case in CASES:
        pod = _by_kind(_render(_values(case)), "Deployment")["autoglue-web"]["spec"]["template"]
        container = pod["spec"]["containers"][0]
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert pause > 0
        assert pod["spec"]["terminationGracePeriodSeconds"] >= pause + graceful, case


def test_the_web_port_value_is_used_by_the_container_its_probes_and_the_policy():
    values = _values("production-values.yaml")
    values["web"] = {"port": 9090}
    objects = _render(values)
    web = _container(objects, "autoglue-web")
    env = {e["name"]: e.get("value") for e in web["env"]}
    assert env["AUTOGLUE_PORT"] == "9090"
    assert web["ports"] == [{"name": "http", "containerPort": 9090, "protocol": "TCP"}]
    assert web["livenessProbe"]["httpGet"]["port"] == "http"
    policy = next(iter(_by_kind(objects, "NetworkPolicy").values()))
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {9090, 9100}


@pytest.mark.parametrize(
    "values",
    [
        {"secrets": {"redisUrl": {"existingSecret": "r", "key": "url", "value": "redis://x"}}},
        {"web": {"pdb": {"enabled": True, "maxUnavailable": "one"}}},
        {"tmpSizeLimit": "lots"},
        {"ingress": {"hosts": [{"host": "a.example.com", "paths": ["/"]}]}},
        {"fullnameOverride": "Autoglue_Prod"},
        {"secrets": {"redisUrl": {"existingSecret": "My_Secret", "key": "url"}}},
        {"web": {"port": 80}},
    ],
    ids=[
        "value-beside-existing-secret",
        "pdb-not-a-count-or-percent",
        "tmp-not-a-quantity",
        "ingress-host-unknown-key",
        "name-not-dns-1123",
        "secret-name-not-dns-1123",
        "web-port-privileged",
    ],
)
def test_the_values_schema_refuses_values_kubernetes_or_the_chart_cannot_use(values):
    chart = helm.Chart.load(CHART)
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({**REQUIRED, **values})


def test_the_values_schema_accepts_the_forms_kubernetes_does():
    chart = helm.Chart.load(CHART)
    chart.validate_schema(
        {
            **REQUIRED,
            "web": {"pdb": {"enabled": True, "maxUnavailable": "25%"}},
            "tmpSizeLimit": "1.5Gi",
            "fullnameOverride": "autoglue-prod",
        }
    )


def test_only_the_webhooks_worker_may_reach_receivers_on_the_webhook_ports():
    objects = _render(_values("production-values.yaml"))
    policies = _by_kind(objects, "NetworkPolicy")
    extra = policies["autoglue-webhooks-worker"]["spec"]
    assert extra["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "webhooks-worker"
    assert extra["policyTypes"] == ["Egress"]
    assert [p["port"] for rule in extra["egress"] for p in rule["ports"]] == [443, 8443]
    # Receivers are anywhere but the denied ranges (see the test on the metadata service).
    assert [peer["ipBlock"]["cidr"] for peer in extra["egress"][0]["to"]] == ["0.0.0.0/0", "::/0"]
    # The ports follow WEBHOOK_ALLOWED_PORTS' default.
    from django.conf import settings

    assert settings.WEBHOOK_ALLOWED_PORTS == [443, 8443]
    shared = policies["autoglue"]["spec"]
    assert 8443 not in {p["port"] for rule in shared["egress"] for p in rule["ports"]}


def test_the_webhooks_worker_is_a_threads_pool_off_the_default_worker_s_queues():
    deployments = _by_kind(_render(_values("defaults")), "Deployment")
    hooks = deployments["autoglue-webhooks-worker"]["spec"]["template"]["spec"]
    command = hooks["containers"][0]["command"]
    assert command[command.index("-Q") + 1] == "webhooks"
    assert command[command.index("--pool") + 1] == "threads"
    assert command[command.index("--concurrency") + 1] == "16"
    default = deployments["autoglue-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert default["command"][default["command"].index("-Q") + 1] == "default,maintenance"
    # A stopping pod finishes the requests it has in flight (each bounded by its deadline).
    from django.conf import settings

    assert hooks["terminationGracePeriodSeconds"] > settings.WEBHOOK_TIMEOUT_SECONDS + 30


def _web_env(objects: list[dict[str, Any]]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in _container(objects, "autoglue-web")["env"]}


def test_persistent_connections_for_the_web_are_a_render_error_unless_its_pool_is_turned_off():
    # Both at once would crash-loop every web pod (the settings refuse them): refused at render.
    values = _values("defaults")
    values["config"] = {"extra": {"DATABASE_CONN_MAX_AGE": "60"}}
    with pytest.raises(helm.HelmError, match=r"set web\.databasePool\.maxSize: 0"):
        _render(values)
    # With the pool off, the web pods get the persistent connections and no pool variable.
    values["web"] = {"databasePool": {"maxSize": 0}}
    env = _web_env(_render(values))
    assert env["DATABASE_CONN_MAX_AGE"] == "60"
    assert "DATABASE_POOL_MAX_SIZE" not in env
    assert "DATABASE_POOL_TIMEOUT" not in env


def test_the_web_pool_is_rendered_by_default_and_a_pool_of_zero_means_a_connection_per_request():
    env = _web_env(_render(_values("defaults")))
    assert env["DATABASE_POOL_MAX_SIZE"] == "8"
    assert env["DATABASE_POOL_TIMEOUT"] == "5"
    assert "DATABASE_CONN_MAX_AGE" not in env
    values = _values("defaults")
    values["web"] = {"databasePool": {"maxSize": 0}}
    env = _web_env(_render(values))
    assert env["DATABASE_POOL_MAX_SIZE"] == "0"
    assert "DATABASE_POOL_TIMEOUT" not in env


def test_the_documented_postgresql_connection_budget_is_the_one_the_chart_defaults_need():
    """docs/kubernetes.md's example, recomputed from what the default render runs."""
    objects = _render(_values("defaults"))
    deployments = _by_kind(objects, "Deployment")

    def per_pod(name: str) -> int:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        if name == "autoglue-web":
            return int(env["WEB_CONCURRENCY"]) * int(env["DATABASE_POOL_MAX_SIZE"])
        if name == "autoglue-beat":
            return 1
        argv = container["command"] + container.get("args", [])
        slots = int(argv[argv.index("--concurrency") + 1])
        # A job thread and its heartbeat thread per slot, a delivery thread per webhooks slot,
        # and the main process.
        return slots + 1 if name == "autoglue-webhooks-worker" else slots * 2 + 1

    steady = sum(d["spec"]["replicas"] * per_pod(n) for n, d in deployments.items()) + 2
    surge = sum(per_pod(n) for n in deployments if n != "autoglue-beat")
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"**{steady}**" in text and f"**{steady + surge}**" in text, (steady, steady + surge)
