"""One resolver for every verb's ``key=value`` words: composition, schemas, option and path rules."""

from fusionbench.config import task_sets  # noqa: F401  (registers the ${fusionbench.task_set:...} resolvers)
from fusionbench.config.compose import compose, config_hash, group_options, load_option, packaged_options, parse_words, validate

__all__ = ["compose", "config_hash", "group_options", "load_option", "packaged_options", "parse_words", "validate"]
