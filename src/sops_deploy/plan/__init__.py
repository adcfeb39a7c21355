"""From the encrypted files to what every target should hold, before any server is touched.

- `build`: decrypt → parse → lint → schema → each target's rendering → the `Plan`;
- `targets`: several outputs per host, each target's keys and what it holds;
- `schema`: required keys, `schema.yaml`, `.env.example`;
- `publicity`: which keys are public (shown rather than masked);
- `background`: slow work begun early in a thread (sops decrypting, the SSH library
  loading) so the waits overlap.

No network: the plan is data.
"""
