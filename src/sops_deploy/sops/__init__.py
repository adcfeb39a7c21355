"""sops and its identities: running it, the keys it decrypts with, installing it.

- `runner`: running sops (stored format, recipients, decrypt in memory), its errors mapped
  once;
- `agekey`: age identities and their public recipients; `sshage`: the SSH deploy key as
  the age identity, handed to sops in memory;
- `tools`, `release`: find, download, verify and cache sops (and age);
- `backends`: the table of key-backend credentials (AWS, Vault, GnuPG, GCP, Azure) that
  reach the sops child alone; `keygroups`: a file's key groups from its metadata;
  `nokey`: why no key could decrypt a file, key group by key group.

It never parses the plaintext: `envfile/` does.
"""
