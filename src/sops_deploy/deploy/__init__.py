"""Delivering a plan to servers: the rollout over hosts and one target on one host.

- `rollout`: hosts in parallel, one connection per host, per-target results (`Rollout`);
- `delivery`: one target on one connected host — look, then compare or deliver — and the
  `HostResult` that tells it by key name only.

It never prints: the Reporter shows the results.
"""
