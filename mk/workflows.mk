# GitHub Actions workflows: actionlint (with shellcheck on every run: script) and zizmor's offline
# audits, both with zero findings. `make workflows-lint` runs them alone; `make test` includes them.
WORKFLOWS_DIR := .github/workflows

.PHONY: workflows-lint
workflows-lint: $(SYNCED) ## Check .github/workflows with actionlint and zizmor --offline.
	$(VENV)/bin/actionlint -shellcheck $(VENV)/bin/shellcheck $(WORKFLOWS_DIR)/*.yml
	$(VENV)/bin/zizmor --quiet --offline --strict-collection --no-progress --color never $(WORKFLOWS_DIR)

TEST_CHECKS += workflows-lint
