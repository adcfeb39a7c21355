"""Every input, from where the user gave it to the typed options a command receives.

- `table`: the one option table (flag ↔ `SOPS_DEPLOY_*` / action input ↔ YAML key ↔ kind ↔
  default ↔ check) and `resolve`, the precedence that fills it;
- `configfile`: `sops-deploy.yaml`, walked with line-numbered errors;
- `environment`: the secrets, tool places and child environments taken from the front
  door's mapping (the only environment this program reads is the one `cli.main` passes);
- `options`: each command's typed options, built from the resolved values, combinations
  checked; `settings`: the option records themselves (`Settings`, `HostSpec`, `Target`, …);
- `serverchecks`: the checks of --owner and --validate-command values;
- `runinfo`: who runs, where, from which commit and run, and when.

It does no I/O beyond reading the config file; nothing here decides an outcome.
"""
