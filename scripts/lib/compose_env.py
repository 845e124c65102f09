"""Which container gets which variable: the part of scripts/check-deploy.sh that needs Python.

    compose_env.py marked-env REPO SERVICES OUT
        writes OUT: .env.example with every secret (commented or not) set to a value of its own
        that can be found again (`Zq<sha1 of the name>Xk`), plus the hidden variables that
        .env.example does not name
    compose_env.py check REPO COMPOSE RENDERED SERVICES
        COMPOSE is the docker-compose.yml, RENDERED its `docker-compose config` with that .env.
        Prints one line per problem, exits 1 when there is any.
SERVICES: the GATEWAY_SERVICES lines of scripts/lib/common.sh (name:port:subdomain[:profile]).

The variables a service reads are the `env = "…"` of its clap attributes (services/<name>/src,
without src/bin) and of crates/service-kit/src/config.rs (RuntimeArgs), plus
CONSUMER_CONCURRENCY_<DURABLE> for each `const DURABLE` of the service (allowed, not required).
A secret is a variable with `hide_env_values = true`, or one whose .env.example value is
`change_me`. Its owners: the services that read it; for `<ROLE>_DB_PASSWORD` postgres and the
service of that role (`<ROLE>_NATS_PASSWORD`: nats and that service); for POSTGRES_PASSWORD
postgres alone. Checked:
  * no service uses env_file;
  * each application container gets exactly the variables its service reads;
  * no container (postgres, nats and nginx included) holds a secret it does not own, under any
    name or inside any value (the DATABASE_URL of another role, a command line …);
  * each service does receive its own secrets, and its DATABASE_URL carries its own password.
"""

import hashlib
import json
import os
import re
import sys

import yaml

ARG_BLOCK = re.compile(r"#\[arg\((.*?)\)\]", re.S)
ENV_NAME = re.compile(r'\benv\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"')
DURABLE = re.compile(r'const\s+DURABLE\s*:\s*&str\s*=\s*"([^"]+)"')
EXAMPLE_LINE = re.compile(r"^#? ?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
# `<ROLE>_DB_PASSWORD` belongs to postgres and the service of that role, and so on.
INFRA_PASSWORDS = {"_DB_PASSWORD": "postgres", "_NATS_PASSWORD": "nats"}


def rust_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "bin"]
        for f in filenames:
            if f.endswith(".rs"):
                yield os.path.join(dirpath, f)


def arg_vars(files):
    """(every env name, the hidden ones) of the #[arg(...)] attributes in files."""
    names, hidden = set(), set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for block in ARG_BLOCK.findall(text):
            m = ENV_NAME.search(block)
            if not m:
                continue
            names.add(m.group(1))
            if re.search(r"\bhide_env_values\s*=\s*true\b", block):
                hidden.add(m.group(1))
    return names, hidden


def durable_vars(files):
    out = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            for d in DURABLE.findall(f.read()):
                out.add("CONSUMER_CONCURRENCY_" + re.sub(r"[-.]", "_", d.upper()))
    return out


def example_secrets(repo):
    out = set()
    with open(os.path.join(repo, ".env.example"), encoding="utf-8") as f:
        for line in f:
            m = EXAMPLE_LINE.match(line.rstrip("\n"))
            if m and m.group(2).strip() == "change_me":
                out.add(m.group(1))
    return out


def marker(name):
    return "Zq" + hashlib.sha1(name.encode()).hexdigest()[:20] + "Xk"


class Model:
    def __init__(self, repo, apps):
        self.repo = repo
        self.apps = apps
        runtime, runtime_hidden = arg_vars([os.path.join(repo, "crates/service-kit/src/config.rs")])
        self.reads, self.durables, hidden = {}, {}, set(runtime_hidden)
        for app in apps:
            files = list(rust_files(os.path.join(repo, "services", app, "src")))
            names, h = arg_vars(files)
            self.reads[app] = names | runtime
            self.durables[app] = durable_vars(files)
            hidden |= h
        self.hidden = hidden
        self.secrets = hidden | example_secrets(repo)

    @staticmethod
    def role(app):
        return app.split("-")[0]

    def owners(self, var):
        if var == "POSTGRES_PASSWORD":
            return {"postgres"}
        for suffix, server in INFRA_PASSWORDS.items():
            if var.endswith(suffix):
                role = var[: -len(suffix)].lower()
                return {server} | {a for a in self.apps if self.role(a) == role}
        return {a for a in self.apps if var in self.reads[a]}


def app_names(services_arg):
    return [line.split(":")[0] for line in services_arg.split("\n") if line.strip()]


def marked_env(repo, services_arg, out):
    model = Model(repo, app_names(services_arg))
    seen, lines = set(), []
    with open(os.path.join(repo, ".env.example"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = EXAMPLE_LINE.match(line)
            if m and m.group(1) in model.secrets and m.group(1) not in seen:
                seen.add(m.group(1))
                lines.append(f"{m.group(1)}={marker(m.group(1))}")
            else:
                lines.append(line)
    for name in sorted(model.secrets - seen):
        lines.append(f"{name}={marker(name)}")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def check(repo, compose_path, rendered_path, services_arg):
    apps = app_names(services_arg)
    model = Model(repo, apps)
    with open(rendered_path, encoding="utf-8") as f:
        rendered = yaml.safe_load(f).get("services", {})
    with open(compose_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f).get("services", {})
    errors = []

    for name, svc in raw.items():
        if "env_file" in svc:
            errors.append(f"{name}: env_file hands the container every variable of .env; list its own instead")

    for app in apps:
        env = rendered.get(app, {}).get("environment", {}) or {}
        keys = set(env)
        missing = model.reads[app] - keys
        extra = keys - model.reads[app] - model.durables[app]
        if missing:
            errors.append(f"{app}: reads but does not get (add to its environment): {', '.join(sorted(missing))}")
        if extra:
            errors.append(f"{app}: gets variables it does not read: {', '.join(sorted(extra))}")

    for name, svc in rendered.items():
        env = svc.get("environment", {}) or {}
        text = json.dumps(svc, sort_keys=True, default=str)
        for var in sorted(model.secrets):
            if name in model.owners(var):
                continue
            if var in env:
                errors.append(f"{name}: its environment names {var}, a secret of {', '.join(sorted(model.owners(var))) or 'no deployed service'}")
            elif marker(var) in text:
                errors.append(f"{name}: holds the value of {var}, a secret of {', '.join(sorted(model.owners(var))) or 'no deployed service'}")

    for app in apps:
        env = rendered.get(app, {}).get("environment", {}) or {}
        # the keys without a value in docker-compose.yml: taken from .env
        passed = {k for k, v in (raw.get(app, {}).get("environment", {}) or {}).items() if v is None}
        for var in sorted(model.secrets & model.reads[app] & passed):
            if env.get(var) != marker(var):
                errors.append(f"{app}: {var} does not reach the container from .env (got {env[var]!r})")
        pw = f"{model.role(app).upper()}_DB_PASSWORD"
        if marker(pw) not in str(env.get("DATABASE_URL", "")):
            errors.append(f"{app}: DATABASE_URL does not carry {pw}")
    pg_env = rendered.get("postgres", {}).get("environment", {}) or {}
    for var in sorted(v for v in model.secrets if v == "POSTGRES_PASSWORD" or v.endswith("_DB_PASSWORD")):
        if pg_env.get(var) != marker(var):
            errors.append(f"postgres: {var} does not reach the container (init.sql needs it)")

    for e in errors:
        print("    " + e)
    if not errors:
        for app in apps:
            own = sorted(model.secrets & model.reads[app])
            print(f"    {app}: {len(model.reads[app])} variables, its own secrets: {' '.join(own)}")
    return 1 if errors else 0


def main(argv):
    if len(argv) == 5 and argv[1] == "marked-env":
        marked_env(argv[2], argv[3], argv[4])
        return 0
    if len(argv) == 6 and argv[1] == "check":
        return check(argv[2], argv[3], argv[4], argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
