"""`fusionbench VERB key=value ...`: one module per verb."""
