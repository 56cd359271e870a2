"""The commands `nlpcli.cli` registers on its Typer app: one per task (`task`), `predict`, `demo`, and `config`,
`env`, `report` (`info`); what they print (`tables`) and how they end on an error (`exits`). Nothing heavy is
imported at module level, so `--help` answers at once."""
