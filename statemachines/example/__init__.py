"""Worked examples, written as a user would write them.

The network example uses the public packages only (`statemachines`, `persistence`,
`statemachines.testing`); the VM example uses those, `statemachines.http` and
`statemachines.toolkit` for its host and its own commands, and, in `seed_flow.py` (the drawing
of the seed's own flow), the command machine of `statemachines.core`.

- `statemachines.example.vm`: the seed's own flow, AddVmFromTemplate cloning template disks on
  a storage host, reverted by RemoveImage; the demo, the benchmark and the property suite's world.
- `statemachines.example.network`: provisioning a service's address, DNS record and switch
  port on a network host, each reverted by its own opposite command.
"""
