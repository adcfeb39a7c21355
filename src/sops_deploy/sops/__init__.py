"""sops and its identities: running it, the keys it decrypts with, installing it.

- `runner`: running sops (stored format, recipients, decrypt in memory), its errors mapped
  once;
- `agekey`: age identities and their public recipients; `sshage`: the SSH deploy key as
  the age identity, handed to sops in memory;
- `tools`, `release`: find, download, verify and cache sops (and age).

It never parses the plaintext: `envfile/` does.
"""
