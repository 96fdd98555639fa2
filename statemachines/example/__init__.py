"""Worked examples, written against the public API only, as a user would write them.

- `statemachines.example.vm`: the seed's own flow, AddVmFromTemplate cloning template disks on
  a storage host, undone by RemoveImage; the demo, the benchmark and the property suite's world.
- `statemachines.example.network`: provisioning a service's address, DNS record and switch
  port on a network host, each undone by its own opposite command.
"""
