#!/usr/bin/env bash
# Set stack prod's config to the release it runs now, so a preview or drift check of prod looks at
# the pull request's (or main's) program with prod staying where it is. Prod's version lives in the
# stack (the promote workflow sets it per run), not in git. When nonprod has published a newer
# version since, staying is a rollback in the program's terms (a release prod already holds).
# Usage: pin_prod_version.sh <org>/prod <org>/nonprod   (needs `pulumi` logged in, read access)
set -euo pipefail
prod_stack="$1"
nonprod_stack="$2"
if ! deployed="$(pulumi stack output version --stack "$prod_stack" 2>/dev/null)" || [[ -z "$deployed" ]]; then
    echo "stack prod has promoted nothing yet: previewing the repository only"
    exit 0
fi
published="$(pulumi stack output version --stack "$nonprod_stack" 2>/dev/null || true)"
pulumi config set version "$deployed" --stack "$prod_stack"
if [[ "$deployed" == "$published" ]]; then
    pulumi config set rollback false --stack "$prod_stack"
    echo "prod runs ${deployed}, the version nonprod published: previewing at it"
else
    pulumi config set rollback true --stack "$prod_stack"
    echo "prod runs ${deployed}, nonprod published '${published}': previewing prod staying at ${deployed}"
fi
