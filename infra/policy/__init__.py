"""Policy pack for predict-buy's stacks: the rules live in rules.py, the pack in __main__.py."""
