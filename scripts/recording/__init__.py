"""The fixture recorder behind scripts/record_fixtures.py (its docstring says
what it needs and how the fixtures are made).

- procs.py: the environment, processes in their own groups, IOCs, capture tools
- netns.py: private network namespaces and what scenarios set up in them
- scenario.py: the ``@scenario`` registry, the context a scenario runs in and
  the helpers several scenarios share
- sessions.py, files.py, network.py, servers.py, libca.py: the scenario
  groups, one function per fixture
- verify.py: checking a recording (the checker's decoding against the
  client's transcript or the reference, and scenario-specific checks)
- record.py: recording one fixture (attempts, verification, metadata)
- readme.py: fixtures/README.md
- main.py: the command line

Modules import ``ca_client`` and ``ca_decode`` from scripts/, which the entry
script puts on sys.path.
"""
