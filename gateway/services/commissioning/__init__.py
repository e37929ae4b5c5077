"""Commissioning checks of a field device (issue 14): pure rules, facts gathered at the edges,
one report shape for the CLI and the API."""
