"""deploy/kubernetes/ as a cluster would get it: every overlay rendered by kustomize, every
object checked against the newest Kubernetes schemas kubernetes-validate ships (strict),
and the names, ports, probes, settings and network policies checked against what the
images and the services' code really do. No cluster is needed (nor reachable here):
docs/kubernetes.md has the commands that run it on one."""

import base64
import inspect
import ipaddress
import json
import os
import pkgutil
import re
import runpy
import shlex
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import kubernetes_validate
import psycopg
import pytest
import yaml

from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.repository import Repository
from servicekit.metrics import IN_FLIGHT
from tests.support import ROOT, dockerfile_instructions

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
DOCS = ROOT / "docs" / "kubernetes.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
# docs/kubernetes.md names the images compose builds ml-gateway/<compose service>.
IMAGE_NAMESPACE = "ml-gateway"
KUSTOMIZE_FLAGS = ("--load-restrictor", "LoadRestrictionsNone")
KUBECTL_HINT = ("install kubectl (it includes kustomize): "
                "https://kubernetes.io/docs/tasks/tools/#kubectl, or on Debian "
                "`sudo apt-get install -y kubectl` from https://pkgs.k8s.io")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# A readiness probe may answer 503 for a while (the predictor loads its model first).
READY_WITHIN_SECONDS = 60


def kubectl():
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(f"kubectl is missing: {KUBECTL_HINT}")
    return path


def kustomize(folder):
    """The objects `kubectl kustomize` renders from folder, as docs/kubernetes.md runs it."""
    result = subprocess.run([kubectl(), "kustomize", *KUSTOMIZE_FLAGS, str(folder)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [item for item in yaml.safe_load_all(result.stdout) if item]


# The images, read from the Dockerfiles compose builds them from


@dataclass
class Image:
    """One image docker-compose.yml builds, as its Dockerfile makes it."""

    service: str
    context: Path
    dockerfile: Path

    @cached_property
    def instructions(self):
        return dockerfile_instructions(self.dockerfile)

    @cached_property
    def environment(self):
        environment = {}
        for keyword, arguments in self.instructions:
            if keyword == "ENV":
                environment.update(pair.split("=", 1) for pair in shlex.split(arguments))
        return environment

    @cached_property
    def command(self):
        """CMD, in its exec (JSON) form."""
        return json.loads([arguments for keyword, arguments in self.instructions
                           if keyword == "CMD"][-1])

    @cached_property
    def user_id(self):
        """The uid of the USER the image runs as, from the useradd that made it; None
        where the Dockerfile names no USER."""
        users = [arguments for keyword, arguments in self.instructions if keyword == "USER"]
        if not users:
            return None
        made = re.search(rf"useradd [^&]*--uid (\d+)[^&]* {re.escape(users[-1])}\b",
                         " ".join(arguments for _, arguments in self.instructions))
        return int(made.group(1))

    @cached_property
    def code(self):
        """The files of the repository that its COPY instructions put in the image."""
        files = []
        for keyword, arguments in self.instructions:
            if keyword == "COPY":
                for source in [word for word in shlex.split(arguments) if
                               not word.startswith("--")][:-1]:
                    path = self.context / source
                    files += sorted(path.rglob("*")) if path.is_dir() else [path]
        return [path for path in files if path.is_file() and "__pycache__" not in path.parts]

    @cached_property
    def settings_read(self):
        """Every environment variable its code reads: os.environ in the Python modules,
        $NAME in the shell scripts, the ${NAME} the templates are filled with, and the
        settings of the *.env files."""
        names = set()
        for path in self.code:
            text = path.read_text(errors="replace")
            if path.suffix == ".py":
                names |= set(re.findall(
                    r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Za-z_]\w*)["']""", text))
            elif path.suffix == ".sh":
                names |= set(re.findall(r"\$\{?([A-Za-z_]\w*)", text))
            elif path.suffix == ".template":
                names |= set(re.findall(r"\$\{([A-Za-z_]\w*)\}", text))
            elif path.suffix == ".env":
                names |= set(re.findall(r"^([A-Za-z_]\w*)=", text, re.MULTILINE))
        return names

    @property
    def gunicorn_config(self):
        """The gunicorn.conf.py its CMD runs (from WORKDIR /app, the context's root), or None."""
        if self.command[0] != "gunicorn":
            return None
        return self.context / self.command[self.command.index("-c") + 1]


def compose_images():
    """{compose service: Image} for every service docker-compose.yml builds."""
    images = {}
    for service, settings in yaml.safe_load(COMPOSE_FILE.read_text())["services"].items():
        build = settings.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (ROOT / build["context"]).resolve()
        images[service] = Image(service, context, context / build.get("dockerfile", "Dockerfile"))
    return images


IMAGES = compose_images()


def image_of(container):
    """The compose image a container runs, or None for another one (PostgreSQL's)."""
    found = re.search(rf"(?:^|/){IMAGE_NAMESPACE}/([^/:@]+)(?:[:@][^/]*)?$", container["image"])
    return IMAGES[found.group(1)] if found else None


# The rendered objects


@dataclass
class Pod:
    """A workload's pod template, the way the tests look at it."""

    workload: dict

    @property
    def name(self):
        return self.workload["metadata"]["name"]

    @property
    def spec(self):
        return self.workload["spec"]["template"]["spec"]

    @property
    def labels(self):
        return self.workload["spec"]["template"]["metadata"]["labels"]

    @property
    def namespace(self):
        return self.workload["metadata"]["namespace"]

    @property
    def containers(self):
        """Every container, init containers (and sidecars) first."""
        return [*self.spec.get("initContainers", []), *self.spec["containers"]]

    def container(self, name):
        return next(container for container in self.containers if container["name"] == name)

    @property
    def ports(self):
        """[(number, name, protocol)] of every container."""
        return [(port["containerPort"], port.get("name"), port.get("protocol", "TCP"))
                for container in self.containers for port in container.get("ports", [])]

    @property
    def port_names(self):
        return {name for _, name, _ in self.ports}

    def port_number(self, name_or_number):
        """The number of one of its ports, by name or number; None if it has no such port."""
        return next((number for number, name, _ in self.ports
                     if name_or_number in (name, number)), None)

    def volume(self, name):
        return next(volume for volume in self.spec.get("volumes", []) if volume["name"] == name)

    def mount_of(self, container, path):
        """(the mount that holds path in container, path relative to it), or (None, None)."""
        path = PurePosixPath(path)
        for mount in sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"])):
            if path.is_relative_to(mount["mountPath"]):
                return mount, path.relative_to(mount["mountPath"])
        return None, None

    def writable(self, container, path):
        """Whether container may write at path: on a volume of its own, not read-only."""
        mount, _ = self.mount_of(container, path)
        return (mount is not None and not mount.get("readOnly", False)
                and {"emptyDir", "persistentVolumeClaim"} & set(self.volume(mount["name"])))


@dataclass
class Manifests:
    overlay: str
    objects: list

    def of_kind(self, kind):
        return [item for item in self.objects if item["kind"] == kind]

    def get(self, kind, name):
        found = [item for item in self.of_kind(kind) if item["metadata"]["name"] == name]
        return found[0] if found else None

    @property
    def pods(self):
        return [Pod(item) for kind in WORKLOAD_KINDS for item in self.of_kind(kind)]

    def pod(self, name):
        return next(pod for pod in self.pods if pod.name == name)

    def pods_selected(self, selector):
        return [pod for pod in self.pods if selects(selector, pod.labels)]

    def project_containers(self):
        """(pod, container, image) for each container that runs one of compose's images."""
        return [(pod, container, image_of(container)) for pod in self.pods
                for container in pod.containers if image_of(container)]

    def image_commands(self):
        """project_containers() that run their image's own command (CMD), not another."""
        return [(pod, container, image) for pod, container, image in self.project_containers()
                if "command" not in container and "args" not in container]

    def service_of(self, pod):
        """The Service whose selector picks pod's labels."""
        found = [service for service in self.of_kind("Service")
                 if selects({"matchLabels": service["spec"]["selector"]}, pod.labels)]
        assert len(found) == 1, f"{pod.name}: Services {found}"
        return found[0]

    def secret_value(self, name, key):
        """A key of a Secret this overlay generates, or None when it holds no such Secret."""
        secret = self.get("Secret", name)
        return None if secret is None else base64.b64decode(secret["data"][key]).decode()

    def environment(self, container, image):
        """The container's environment as its process sees it: the image's ENV, then the
        container's own, with the values of the Secrets this overlay holds."""
        environment = dict(image.environment) if image else {}
        for variable in container.get("env", []):
            if "value" in variable:
                environment[variable["name"]] = variable["value"]
            elif "secretKeyRef" in variable.get("valueFrom", {}):
                reference = variable["valueFrom"]["secretKeyRef"]
                value = self.secret_value(reference["name"], reference["key"])
                if value is not None:
                    environment[variable["name"]] = value
        return environment


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions) picks these labels."""
    if labels is None:
        return False
    return all(labels.get(key) == value
               for key, value in selector.get("matchLabels", {}).items()) and all(
        expression_holds(expression, labels)
        for expression in selector.get("matchExpressions", []))


def expression_holds(expression, labels):
    key, values = expression["key"], expression.get("values", [])
    return {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
            "Exists": key in labels, "DoesNotExist": key not in labels}[expression["operator"]]


@pytest.fixture(scope="module")
def rendered():
    """Each overlay, built once for the module."""
    return {overlay: Manifests(overlay, kustomize(KUBERNETES / "overlays" / overlay))
            for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def manifests(request, rendered):
    return rendered[request.param]


def test_kubectl_is_installed():
    # Every test here renders the overlays with it: say so plainly, never skip.
    assert shutil.which("kubectl"), f"kubectl is missing: {KUBECTL_HINT}"


def test_every_object_is_valid_for_the_newest_kubernetes_in_strict_mode(manifests):
    version = kubernetes_validate.latest_version()
    problems = []
    for item in manifests.objects:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except (kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError) as error:
            problems.append(f"{item['kind']}/{item['metadata']['name']}: {error.message}")

    assert not problems, f"against Kubernetes {version}:\n" + "\n".join(problems)


def test_everything_is_in_the_stacks_namespace_under_the_restricted_pod_security(manifests):
    [namespace] = manifests.of_kind("Namespace")
    name = namespace["metadata"]["name"]

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {item["metadata"].get("namespace") for item in manifests.objects
            if item["kind"] != "Namespace"} == {name}


def test_the_images_are_composes_own_at_a_fixed_tag(manifests):
    containers = [container for pod in manifests.pods for container in pod.containers]
    project = {image_of(container).service for container in containers if image_of(container)}

    # Each of compose's images runs somewhere, and every image names its tag: an untagged
    # one is :latest, which the kubelet always pulls (a kind cluster has no registry).
    assert project == set(IMAGES)
    for container in containers:
        tag = re.search(r":([^/:]+)$", container["image"])
        assert tag and tag.group(1) != "latest", container["image"]


def test_every_pod_meets_the_restricted_profile_with_a_read_only_root(manifests):
    for pod in manifests.pods:
        assert pod.spec["securityContext"]["runAsNonRoot"] is True, pod.name
        assert pod.spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod.spec.get("automountServiceAccountToken") is False, pod.name
        for container in pod.containers:
            context = container["securityContext"]
            assert context["runAsUser"] != 0, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]


def test_containers_run_as_the_user_their_image_was_built_for(manifests):
    # The images chown what their user writes (the predictor's aliases, the metrics
    # socket's folder) to that uid: another one could not write there.
    for _, container, image in manifests.project_containers():
        if image.user_id is not None:
            assert container["securityContext"]["runAsUser"] == image.user_id, container["name"]


def test_every_setting_a_container_gets_is_one_its_code_reads(manifests):
    # A variable renamed in the code, or misspelt here, would otherwise be ignored in silence.
    for _, container, image in manifests.project_containers():
        given = {variable["name"] for variable in container.get("env", [])}

        assert given <= image.settings_read, f"{container['name']}: {given - image.settings_read}"


# What the containers listen on, and where the gateway's Nginx writes


def nginx_container(manifests):
    """(pod, container, image) of the gateway's Nginx: the container whose image runs it."""
    [found] = [(pod, container, image) for pod, container, image in manifests.image_commands()
               if image.command == ["nginx"]]
    return found


def render_gateway(manifests, tmp_path):
    """Render the gateway container's configuration with the image's script and the
    container's environment, from the ConfigMap it mounts where GATEWAY_NGINX_DIR points.
    Return its pod, container, environment and {"nginx.conf": text, "gateway.conf": text}."""
    pod, container, image = nginx_container(manifests)
    environment = manifests.environment(container, image)
    templates = environment["GATEWAY_NGINX_DIR"]
    mount, _ = pod.mount_of(container, templates)
    config_map = manifests.get("ConfigMap", pod.volume(mount["name"])["configMap"]["name"])
    source = tmp_path / "templates"
    source.mkdir()
    for name, text in config_map["data"].items():
        (source / name).write_text(text)
    out = tmp_path / "nginx"
    result = subprocess.run(
        ["sh", str(ROOT / "nginx" / "render-gateway.sh"), str(out)],
        env={"PATH": os.environ["PATH"], **environment, "GATEWAY_NGINX_DIR": str(source)},
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return pod, container, environment, {
        "nginx.conf": (out / "nginx.conf").read_text(),
        "gateway.conf": (out / "conf.d" / "gateway.conf").read_text(),
    }


def listen_ports(gateway_conf):
    addresses = re.findall(r"^\s*listen\s+([^;\s]+)", gateway_conf, re.MULTILINE)
    return {int(address.rpartition(":")[2]) for address in addresses
            if not address.startswith("unix:")}


@pytest.fixture
def clean_environment(monkeypatch):
    """Run a settings module with exactly an environment: the test's own settings of
    the same names are removed first."""

    def run(path, environment, names):
        with monkeypatch.context() as patch:
            for name in names | set(environment):
                patch.delenv(name, raising=False)
            for name, value in environment.items():
                patch.setenv(name, value)
            return runpy.run_path(str(path))

    return run


def gunicorn_containers(manifests):
    return [(pod, container, image) for pod, container, image in manifests.image_commands()
            if image.gunicorn_config]


def test_container_ports_are_the_ports_each_process_listens_on(manifests, tmp_path,
                                                               clean_environment):
    for pod, container, image in gunicorn_containers(manifests):
        settings = clean_environment(image.gunicorn_config,
                                     manifests.environment(container, image),
                                     image.settings_read)
        metrics = inspect.getclosurevars(settings["when_ready"]).nonlocals["bind"]
        # On every address of the pod: the kubelet, the gateway and Prometheus come from
        # outside it.
        assert settings["bind"].rpartition(":")[0] == "0.0.0.0"
        assert metrics.rpartition(":")[0] == "0.0.0.0"
        assert pod.port_number("http") == int(settings["bind"].rpartition(":")[2])
        assert pod.port_number("metrics") == int(metrics.rpartition(":")[2])
        assert pod.port_names == {"http", "metrics"}

    pod, container, environment, files = render_gateway(manifests, tmp_path)
    assert listen_ports(files["gateway.conf"]) == {
        number for number, _, _ in container_ports(container)}
    assert pod.port_number("internal") == int(environment["GATEWAY_INTERNAL_PORT"])

    sidecar, image = next((container, image) for owner, container, image
                          in manifests.image_commands()
                          if owner == pod and "--listen" in image.command)
    listen = image.command[image.command.index("--listen") + 1]
    assert container_ports(sidecar) == [(int(listen.rpartition(":")[2]), "metrics", "TCP")]


def container_ports(container):
    return [(port["containerPort"], port.get("name"), port.get("protocol", "TCP"))
            for port in container.get("ports", [])]


def test_what_the_gateway_writes_is_on_its_own_volumes(manifests, tmp_path):
    pod, container, _, files = render_gateway(manifests, tmp_path)
    nginx_conf, gateway_conf = files["nginx.conf"], files["gateway.conf"]
    written = {
        "the pid file": re.findall(r"^\s*pid\s+([^;]+);", nginx_conf, re.MULTILINE),
        "the temp folders Nginx creates": re.findall(r"^\s*\w+_temp_path\s+([^;\s]+)",
                                                     nginx_conf, re.MULTILINE),
        "conf.d, which the entrypoint's scripts write": [
            str(PurePosixPath(include).parent)
            for include in re.findall(r"^\s*include\s+([^;]+);", nginx_conf, re.MULTILINE)],
        "the API keys' socket": re.findall(r"^\s*listen\s+unix:([^;\s]+)", gateway_conf,
                                           re.MULTILINE),
    }

    for what, paths in written.items():
        assert paths, what
        for path in paths:
            assert pod.writable(container, path), f"{what}: {path}"

    # Nginx's lines reach the sidecar: the socket it sends to is the one the sidecar
    # binds, through a volume both mount.
    [socket] = set(re.findall(r"server=unix:([^,\s]+)", gateway_conf))
    sidecar, image = next((container, image) for owner, container, image
                          in manifests.image_commands()
                          if owner == pod and "--socket" in image.command)
    bound = image.command[image.command.index("--socket") + 1]
    sent_mount, sent = pod.mount_of(container, socket)
    bound_mount, bound_path = pod.mount_of(sidecar, bound)
    assert (sent_mount["name"], sent) == (bound_mount["name"], bound_path)
    assert pod.writable(sidecar, bound)


def test_gunicorn_temp_files_are_on_a_writable_volume(manifests):
    # gunicorn's worker heartbeats and prometheus-client's multiprocess samples go to
    # the temp folder (servicekit/gunicorn.py), which Python finds in TMPDIR, else /tmp.
    for pod, container, image in gunicorn_containers(manifests):
        temp = manifests.environment(container, image).get("TMPDIR", "/tmp")

        assert pod.writable(container, temp), container["name"]


def test_the_gateway_templates_are_nginx_own_files(manifests):
    pod = manifests.pod("gateway")
    mounted = {pod.volume(mount["name"])["configMap"]["name"]
               for container in pod.containers for mount in container.get("volumeMounts", [])
               if "configMap" in pod.volume(mount["name"])}
    [config_map] = [manifests.get("ConfigMap", name) for name in mounted]

    # One template for every way of running: the ConfigMap is nginx/'s files, not copies.
    assert config_map["data"] == {name: (ROOT / "nginx" / name).read_text()
                                  for name in config_map["data"]}
    assert set(config_map["data"]) == {
        path.name for path in IMAGES["gateway"].code
        if path.suffix in (".template", ".env")}


# Services, DNS and probes


def test_services_select_pods_and_name_ports_they_have(manifests):
    for service in manifests.of_kind("Service"):
        pods = manifests.pods_selected({"matchLabels": service["spec"]["selector"]})
        assert pods, service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            for pod in pods:
                number = pod.port_number(port["targetPort"])
                assert number is not None, (service["metadata"]["name"], port)
                if service["spec"].get("clusterIP") == "None":
                    # A headless Service maps no port: clients use the pod's own.
                    assert port["port"] == number, service["metadata"]["name"]


def test_the_gateway_lists_every_ready_pod_of_each_pool(manifests, tmp_path):
    """upstreams-from-dns.sh, with a getent that answers as the cluster's DNS would: each
    headless Service's name resolves to the addresses of its pods."""
    pools = {"logger": "logger", "predictors": "predictor"}  # upstream: Deployment
    addresses, answers = {}, tmp_path / "answers"
    answers.mkdir()
    for index, service in enumerate(manifests.of_kind("Service")):
        if service["spec"].get("clusterIP") == "None":
            name = service["metadata"]["name"]
            addresses[name] = [f"10.244.{index}.{pod}" for pod in (11, 12, 13)]
            (answers / name).write_text("".join(f"{a} STREAM {name}\n" for a in addresses[name]))
    getent = tmp_path / "bin" / "getent"  # `getent ahostsv4 NAME`
    getent.parent.mkdir()
    getent.write_text(f'#!/bin/sh\ncat "{answers}/$2" 2>/dev/null || true\n')
    getent.chmod(getent.stat().st_mode | stat.S_IXUSR)
    _, _, environment, _ = render_gateway(manifests, tmp_path)
    templates = tmp_path / "templates"

    result = subprocess.run(
        ["sh", str(ROOT / "nginx" / "upstreams-from-dns.sh"), "--print"],
        env={**environment, "PATH": f"{getent.parent}:{os.environ['PATH']}",
             "TMPDIR": str(tmp_path), "GATEWAY_NGINX_DIR": str(templates)},
        capture_output=True, text=True,
    )

    assert result.returncode == 0, result.stderr
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", result.stdout, re.DOTALL))
    for upstream, deployment in pools.items():
        pod = manifests.pod(deployment)
        service = manifests.service_of(pod)
        port = pod.port_number(service["spec"]["ports"][0]["targetPort"])
        servers = re.findall(r"server (\S+)", upstreams[upstream])
        assert sorted(servers) == [f"{address}:{port}"
                                   for address in sorted(addresses[service["metadata"]["name"]])]


@pytest.fixture(scope="module")
def service_app(tmp_path_factory):
    """The Flask app each gunicorn image serves (its wsgi_app), made once, on SQLite in a
    temporary folder where it keeps a database."""
    apps = {}

    def app_for(wsgi_app):
        if wsgi_app not in apps:
            factory = pkgutil.resolve_name(wsgi_app.removesuffix("()"))
            apps[wsgi_app] = factory({
                "TESTING": True, "DATABASE_URL": "",
                "DB_PATH": str(tmp_path_factory.mktemp("database") / "logger.sqlite3"),
            })
        return apps[wsgi_app]

    yield app_for
    for app in apps.values():
        if "store" in app.extensions:
            app.extensions["store"].close()


def http_probes(container):
    return [(kind, container[kind]["httpGet"]) for kind in
            ("startupProbe", "livenessProbe", "readinessProbe")
            if "httpGet" in container.get(kind, {})]


def test_probes_ask_routes_the_services_answer_on_their_own_ports(manifests, service_app):
    for _, container, image in gunicorn_containers(manifests):
        app = service_app(runpy.run_path(str(image.gunicorn_config))["wsgi_app"])
        client = app.test_client()
        assert {kind for kind, _ in http_probes(container)} == {
            "startupProbe", "livenessProbe", "readinessProbe"}
        for kind, probe in http_probes(container):
            assert probe["port"] in {name for _, name, _ in container_ports(container)}
            deadline = time.monotonic() + READY_WITHIN_SECONDS
            while (status := client.get(probe["path"]).status_code) == 503 \
                    and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status == 200, f"{container['name']} {kind} {probe['path']}: {status}"


def test_the_gateways_probes_ask_locations_nginx_answers_itself(manifests, tmp_path):
    # Nothing short of a running Nginx answers here: the rendered configuration shows the
    # exact locations, which return without a proxy.
    _, container, _, files = render_gateway(manifests, tmp_path)
    locations = dict(re.findall(r"location = (\S+) \{(.*?)\n    \}", files["gateway.conf"],
                                re.DOTALL))

    for _, probe in http_probes(container):
        assert probe["port"] in {name for _, name, _ in container_ports(container)}
        assert "proxy_pass" not in locations[probe["path"]]
        assert re.search(r"return 200 ", locations[probe["path"]])


def test_the_logger_reaches_the_gateways_internal_listener(manifests, clean_environment):
    logger = manifests.pod("logger")
    [(_, container, image)] = [entry for entry in manifests.image_commands()
                               if entry[0] == logger]
    gateway_pod, nginx, nginx_image = nginx_container(manifests)
    gateway = manifests.service_of(gateway_pod)
    gateway_environment = manifests.environment(nginx, nginx_image)
    config = clean_environment(image.gunicorn_config.with_name("config.py"),
                               manifests.environment(container, image),
                               image.settings_read)["Config"]
    urls = {name: getattr(config, name) for name in dir(config)
            if str(getattr(config, name)).startswith("http")}

    # Every URL the logger calls (forwards, shadows, the models' distributions) names
    # the gateway's Service on the port that leads to its internal listener.
    assert urls
    for name, url in urls.items():
        address = urlsplit(url)
        [port] = [port for port in gateway["spec"]["ports"] if port["port"] == address.port]
        assert address.hostname == gateway["metadata"]["name"], name
        assert gateway_pod.port_number(port["targetPort"]) == int(
            gateway_environment["GATEWAY_INTERNAL_PORT"]), name


# Network policies, evaluated


@dataclass
class Peer:
    """One end of a connection: a pod (labels, namespace) or an address outside the cluster."""

    name: str
    labels: dict | None = None
    namespace: str | None = None
    address: str | None = None
    ports: list = field(default_factory=list)


def peer_matches(rule_peer, peer, policy_namespace):
    if "ipBlock" in rule_peer:
        # Meant for addresses outside the cluster; whether it also matches pods is up to
        # the network plugin, and these policies never count on it.
        if peer.address is None:
            return False
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.address)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except", []))
    if peer.labels is None:
        return False
    if "namespaceSelector" in rule_peer:
        namespace_matches = selects(rule_peer["namespaceSelector"],
                                    {"kubernetes.io/metadata.name": peer.namespace})
    else:
        namespace_matches = peer.namespace == policy_namespace
    return namespace_matches and selects(rule_peer.get("podSelector", {}), peer.labels)


def port_matches(rule_ports, port):
    """Whether a rule's ports (none: every port) include port, (number, name, protocol)."""
    if not rule_ports:
        return True
    number, name, protocol = port
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None or wanted == name:
            return True
        if isinstance(wanted, int) and wanted <= number <= rule_port.get("endPort", wanted):
            return True
    return False


def policies_allow(policies, direction, subject, other, port):
    """Whether the policies that isolate subject in this direction let this connection
    through (a pod no policy selects for it is not isolated)."""
    if subject.labels is None:
        return True
    selecting = [policy for policy in policies
                 if policy["metadata"]["namespace"] == subject.namespace
                 and direction in policy["spec"]["policyTypes"]
                 and selects(policy["spec"]["podSelector"], subject.labels)]
    rules, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return not selecting or any(
        (not rule.get(peers) or any(peer_matches(rule_peer, other, policy["metadata"]["namespace"])
                                    for rule_peer in rule[peers]))
        and port_matches(rule.get("ports"), port)
        for policy in selecting for rule in policy["spec"].get(rules, []))


def connection_allowed(manifests, source, destination, port):
    policies = manifests.of_kind("NetworkPolicy")
    return (policies_allow(policies, "Egress", source, destination, port)
            and policies_allow(policies, "Ingress", destination, source, port))


def pod_peers(manifests):
    return [Peer(pod.name, pod.labels, pod.namespace, ports=pod.ports) for pod in manifests.pods]


def reachable(manifests, source):
    return {(destination.name, port[1]) for destination in pod_peers(manifests)
            for port in destination.ports
            if connection_allowed(manifests, source, destination, port)}


def test_network_policies_select_pods_and_ports_that_exist(manifests):
    for policy in manifests.of_kind("NetworkPolicy"):
        spec, name = policy["spec"], policy["metadata"]["name"]
        subjects = manifests.pods_selected(spec["podSelector"])
        assert subjects, name
        for rules, peers in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(rules, []):
                local = [peer for peer in rule.get(peers, [])
                         if set(peer) == {"podSelector"}]
                for peer in local:
                    assert manifests.pods_selected(peer["podSelector"]), name
                # A port is the destination's: the policy's own pods when they receive,
                # the peers when they send.
                destinations = subjects if rules == "ingress" else [
                    pod for peer in local for pod in manifests.pods_selected(peer["podSelector"])]
                for port in rule.get("ports", []):
                    if destinations and "port" in port:
                        assert any(pod.port_number(port["port"]) is not None
                                   for pod in destinations), (name, port)


def test_only_the_gateway_reaches_the_services_and_only_the_loggers_the_database(manifests):
    wanted = {("gateway", "logger", "http"), ("gateway", "predictor", "http"),
              ("logger", "gateway", "internal"), ("logger", "postgres", "postgresql")}
    names = {pod.name for pod in manifests.pods}

    allowed = {(source.name, *destination) for source in pod_peers(manifests)
               for destination in reachable(manifests, source)}

    assert allowed == {connection for connection in wanted if {*connection[:2]} <= names}


def test_clients_reach_the_public_port_and_prometheus_the_metrics_ports(manifests):
    client = Peer("client", address="203.0.113.10")
    prometheus = Peer("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring")
    # A pod of another namespace that looks like the gateway is no gateway.
    stranger = Peer("stranger", {"app.kubernetes.io/name": "gateway"}, "default")
    public = {("gateway", "http")}

    assert reachable(manifests, client) == public
    assert reachable(manifests, stranger) == public
    assert reachable(manifests, prometheus) == public | {
        (pod.name, "metrics") for pod in manifests.pods if "metrics" in pod.port_names}


def test_every_pod_resolves_names_and_only_the_logger_reaches_its_database(manifests):
    dns = Peer("coredns", {"k8s-app": "kube-dns"}, "kube-system")
    url = database_url(manifests)
    host, port = urlsplit(url).hostname, urlsplit(url).port
    database = Peer("database", address="198.51.100.20")
    in_cluster = manifests.get("Service", host) is not None

    for pod in pod_peers(manifests):
        assert connection_allowed(manifests, pod, dns, (53, None, "UDP")), pod.name
    assert {pod.name for pod in pod_peers(manifests) if connection_allowed(
        manifests, pod, database, (port, None, "TCP"))} == (set() if in_cluster else {"logger"})


# The database


def documented_commands(doc=DOCS):
    """The commands of a document's code blocks (docs/kubernetes.md's by default),
    continuation lines joined, each split into words (a pipe ends one)."""
    blocks = re.findall(r"^```(?:bash|sh)\n(.*?)^```", doc.read_text(), re.MULTILINE | re.DOTALL)
    lines = re.sub(r"\\\n\s*", " ", "".join(blocks)).splitlines()
    return [shlex.split(part, comments=True) for line in lines for part in line.split("|")
            if shlex.split(part, comments=True)]


def documented_secrets():
    """{name: (namespace, {key: value or file})} of the `kubectl create secret generic`
    commands of docs/kubernetes.md."""
    secrets = {}
    for words in documented_commands():
        if words[:4] != ["kubectl", "create", "secret", "generic"]:
            continue
        namespace = words[words.index("--namespace") + 1]
        keys = dict(word.split("=", 2)[1:] for word in words
                    if word.startswith(("--from-literal=", "--from-file=")))
        secrets[words[4]] = (namespace, keys)
    return secrets


def database_url(manifests):
    """The logger's database URL: its Secret's, from the overlay or the docs' command."""
    pod = manifests.pod("logger")
    [reference] = [variable["valueFrom"]["secretKeyRef"] for variable in
                   pod.container("logger")["env"] if variable["name"] == "LOGGER_DATABASE_URL"]
    value = manifests.secret_value(reference["name"], reference["key"])
    return value if value is not None else documented_secrets()[reference["name"]][1][
        reference["key"]]


def referenced(pod, kind):
    """The names of the objects of kind (Secret, ConfigMap, PersistentVolumeClaim) pod
    uses, with the keys it reads of each ({} for a whole object)."""
    found = {}
    for volume in pod.spec.get("volumes", []):
        source = {"Secret": ("secret", "secretName"), "ConfigMap": ("configMap", "name"),
                  "PersistentVolumeClaim": ("persistentVolumeClaim", "claimName")}[kind]
        if source[0] in volume:
            keys = {item["key"] for item in volume[source[0]].get("items", [])}
            found.setdefault(volume[source[0]][source[1]], set()).update(keys)
    reference = {"Secret": "secretKeyRef", "ConfigMap": "configMapKeyRef"}.get(kind)
    for container in pod.containers:
        for variable in container.get("env", []):
            if reference in variable.get("valueFrom", {}):
                ref = variable["valueFrom"][reference]
                found.setdefault(ref["name"], set()).add(ref["key"])
    return found


def test_what_the_pods_need_is_rendered_or_created_by_the_documented_command(manifests):
    [namespace] = manifests.of_kind("Namespace")
    for kind in ("Secret", "ConfigMap", "PersistentVolumeClaim"):
        for pod in manifests.pods:
            for name, keys in referenced(pod, kind).items():
                found = manifests.get(kind, name)
                if found is not None:
                    assert keys <= set(found.get("data", {})), (name, keys)
                    continue
                # Only production's database Secret is yours to make, with the
                # command of docs/kubernetes.md.
                assert kind == "Secret", (pod.name, name)
                documented_namespace, documented_keys = documented_secrets()[name]
                assert documented_namespace == namespace["metadata"]["name"]
                assert keys <= set(documented_keys), (name, keys)


def test_the_logger_uses_postgresql_with_its_password_from_a_file(manifests, clean_environment):
    pod = manifests.pod("logger")
    container, image = pod.container("logger"), image_of(pod.container("logger"))
    environment = {**manifests.environment(container, image),
                   "LOGGER_DATABASE_URL": database_url(manifests)}
    config = clean_environment(image.gunicorn_config.with_name("config.py"), environment,
                               image.settings_read)["Config"]
    url = psycopg.conninfo.conninfo_to_dict(config.DATABASE_URL)
    mount, key = pod.mount_of(container, config.DATABASE_PASSWORD_FILE)
    secret = pod.volume(mount["name"])["secret"]

    # PostgreSQL, not SQLite (whose /data is no volume here), and no password in the URL.
    assert "password" not in url
    assert str(key) in {item["path"] for item in secret["items"]}
    service = manifests.get("Service", url["host"])
    if service is None:  # outside the cluster (production)
        return
    # In the overlay: the URL names its Service, port, user and database, and the
    # password is the same Secret's key as the server's.
    [server] = manifests.pods_selected({"matchLabels": service["spec"]["selector"]})
    [container] = server.spec["containers"]
    settings = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert int(url["port"]) == server.port_number(service["spec"]["ports"][0]["targetPort"])
    assert (url["user"], url["dbname"]) == (settings["POSTGRES_USER"], settings["POSTGRES_DB"])
    server_mount, server_key = server.mount_of(container, settings["POSTGRES_PASSWORD_FILE"])
    server_secret = server.volume(server_mount["name"])["secret"]
    assert server_secret["secretName"] == secret["secretName"]
    assert {item["path"]: item["key"] for item in server_secret["items"]}[str(server_key)] == {
        item["path"]: item["key"] for item in secret["items"]}[str(key)]


# Scaling, disruption and shutdown


def test_the_autoscaler_scales_the_predictors_on_the_metric_they_export(manifests,
                                                                        clean_environment):
    [autoscaler] = manifests.of_kind("HorizontalPodAutoscaler")
    target = autoscaler["spec"]["scaleTargetRef"]
    deployment = manifests.get(target["kind"], target["name"])
    pod = Pod(deployment)
    [(_, container, image)] = [entry for entry in gunicorn_containers(manifests)
                               if entry[0].name == pod.name]
    settings = clean_environment(image.gunicorn_config, manifests.environment(container, image),
                                 image.settings_read)
    [custom] = [metric["pods"] for metric in autoscaler["spec"]["metrics"]
                if metric["type"] == "Pods"]
    [exported] = IN_FLIGHT.describe()
    adapter = yaml.safe_load((KUBERNETES / "monitoring" / "prometheus-adapter-values.yaml")
                             .read_text())
    [rule] = [rule for rule in adapter["rules"]["custom"]
              if rule["name"]["as"] == custom["metric"]["name"]]

    # The autoscaler owns the count: a replicas field would be reset by every apply.
    assert "replicas" not in deployment["spec"]
    assert {metric["type"] for metric in autoscaler["spec"]["metrics"]} == {"Resource", "Pods"}
    # The series servicekit exports, under the name the adapter serves it as.
    assert rule["seriesQuery"].split("{")[0] == exported.name == custom["metric"]["name"]
    # A target a pod reaches before it is full: on gthread before all its request threads
    # are busy, on gevent (the default) long before its workers' connections are taken.
    on_threads = settings["worker_class"].endswith("ThreadWorker")
    per_worker = settings["threads"] if on_threads else settings["worker_connections"]
    assert 0 < int(custom["target"]["averageValue"]) < settings["workers"] * per_worker
    # A pool of one has no other replica for the gateway to retry on.
    assert autoscaler["spec"]["minReplicas"] >= 2


def test_every_pool_has_a_disruption_budget_that_lets_a_node_drain(manifests):
    budgets = manifests.of_kind("PodDisruptionBudget")
    covered = [pod.name for budget in budgets
               for pod in manifests.pods_selected(budget["spec"]["selector"])]

    assert sorted(covered) == sorted(pod.name for pod in manifests.pods
                                     if pod.workload["kind"] == "Deployment")
    for budget in budgets:
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_pod_monitor_scrapes_every_metrics_port(rendered):
    monitor = yaml.safe_load((KUBERNETES / "monitoring" / "pod-monitor.yaml").read_text())
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]

    for manifests in rendered.values():
        [namespace] = manifests.of_kind("Namespace")
        scraped = manifests.pods_selected(monitor["spec"]["selector"])
        assert monitor["metadata"]["namespace"] == namespace["metadata"]["name"]
        assert {pod.name for pod in scraped if endpoint["port"] in pod.port_names} == {
            pod.name for pod in manifests.pods if "metrics" in pod.port_names}


def test_gunicorn_drains_before_the_kubelet_kills_the_pod(manifests, clean_environment):
    for pod, container, image in gunicorn_containers(manifests):
        settings = clean_environment(image.gunicorn_config,
                                     manifests.environment(container, image),
                                     image.settings_read)
        # The kubelet sends SIGTERM, then SIGKILL after the grace period (30 s by default).
        assert settings["graceful_timeout"] < pod.spec.get("terminationGracePeriodSeconds", 30)


# The shared model repository (components/shared-model-repository, used by dev)


def test_the_seeded_model_repository_is_the_images_and_replicas_share_it(rendered, tmp_path):
    manifests = rendered["dev"]
    pod = manifests.pod("predictor")
    [seed] = pod.spec["initContainers"]
    main = pod.container("predictor")
    folder = {variable["name"]: variable["value"] for variable in main["env"]}[
        "PREDICTOR_MODEL_REPOSITORY"]
    seed_environment = {variable["name"]: variable["value"] for variable in seed["env"]}
    mount, _ = pod.mount_of(main, folder)
    seed_mount, _ = pod.mount_of(seed, seed_environment["PREDICTOR_MODEL_REPOSITORY"])
    assert mount["name"] == seed_mount["name"]
    assert pod.writable(main, folder) and pod.writable(seed, folder)
    assert "persistentVolumeClaim" in pod.volume(mount["name"])
    assert seed["command"][0] == "python"

    # Run it as three replicas starting at once would, from the image's WORKDIR (the
    # repository's root), then once more as a restart would.
    shared = tmp_path / "models"
    command = [sys.executable, *seed["command"][1:]]
    environment = {**os.environ, **seed_environment, "PREDICTOR_MODEL_REPOSITORY": str(shared)}
    replicas = [subprocess.Popen(command, cwd=ROOT, env=environment, stderr=subprocess.PIPE,
                                 text=True) for _ in range(3)]
    for replica in replicas:
        _, errors = replica.communicate(timeout=120)
        assert replica.returncode == 0, errors
    again = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr

    shipped, seeded = Repository(DEFAULT_REPOSITORY), Repository(shared)
    assert [found.version for found in seeded.versions()] == [
        found.version for found in shipped.versions()]
    assert seeded.aliases()["production"] == shipped.aliases()["production"]
    assert len(seeded.aliases()["changes"]) == 1


# The documented commands


@pytest.mark.parametrize("doc", [DOCS, ROOT / "README.md"], ids=lambda doc: doc.name)
def test_the_documented_kustomize_commands_build(doc):
    commands = [words for words in documented_commands(doc)
                if words[:2] == ["kubectl", "kustomize"]]

    assert commands
    for words in commands:
        result = subprocess.run([kubectl(), *words[1:]], cwd=ROOT, capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{shlex.join(words)}: {result.stderr}"
