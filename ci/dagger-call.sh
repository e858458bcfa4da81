#!/usr/bin/env bash
# The one `dagger call` that both CI pipelines run (ci/buildkite/pipeline.yml and
# ci/github/amichain.yml), so Buildkite, GitHub Actions and a laptop pass the same flags.
#
#   ci/dagger-call.sh FUNCTION        plan | build-all | ids | sweep | IMAGE (base, web, ...)
#
# Settings come from the environment:
#   AMICHAIN_BUCKET (required), AMICHAIN_PREFIX, AMICHAIN_REGION,
#   AMICHAIN_COPY_REGIONS and AMICHAIN_FORCE (comma-separated), AMICHAIN_COMMIT,
#   AMICHAIN_BRANCH, AMICHAIN_PARALLEL, AMICHAIN_MAX_AGE (e.g. 720h).
# Credentials are passed by NAME (env://): dagger reads the values itself, so they are never on
# a command line and show as *** in its output. First match wins:
#   AWS_WEB_IDENTITY_TOKEN + AMICHAIN_ROLE_ARN          (GitHub Actions OIDC)
#   AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]
# The function's result (the plan or the build table) goes to stdout, dagger's progress to
# stderr. A failed build-all prints its table to stdout too, once, and exits non-zero.
set -euo pipefail

die() { echo "ci/dagger-call.sh: $*" >&2; exit 2; }

fn=${1:-}
[[ -n $fn ]] || die "usage: ci/dagger-call.sh FUNCTION (plan, build-all, ids, sweep or an image name)"
[[ -n ${AMICHAIN_BUCKET:-} ]] || die "AMICHAIN_BUCKET is not set: the S3 bucket that holds the AMI records"
command -v dagger >/dev/null ||
	die "the dagger CLI is not on PATH: install v0.21.7 on this runner (see dagger/engine/README.md)"
[[ -n ${_EXPERIMENTAL_DAGGER_RUNNER_HOST:-} ]] ||
	echo "ci/dagger-call.sh: warning: _EXPERIMENTAL_DAGGER_RUNNER_HOST is not set, so dagger starts an engine of its own and its cache is not the host's shared one (dagger/engine/README.md)" >&2

args=(--bucket "$AMICHAIN_BUCKET")
# Optional flags are passed only when set: the module's defaults apply otherwise.
opt() { [[ -z ${2:-} ]] || args+=("$1" "$2"); }
opt --prefix "${AMICHAIN_PREFIX:-}"
opt --region "${AMICHAIN_REGION:-}"
opt --copy-regions "${AMICHAIN_COPY_REGIONS:-}"
opt --commit "${AMICHAIN_COMMIT:-}"
opt --branch "${AMICHAIN_BRANCH:-}"
opt --parallel "${AMICHAIN_PARALLEL:-}"
opt --max-age "${AMICHAIN_MAX_AGE:-}"
opt --force "${AMICHAIN_FORCE:-}"

if [[ -n ${AWS_WEB_IDENTITY_TOKEN:-} ]]; then
	[[ -n ${AMICHAIN_ROLE_ARN:-} ]] || die "AWS_WEB_IDENTITY_TOKEN is set but AMICHAIN_ROLE_ARN is not: the IAM role to assume"
	args+=(--aws-web-identity-token env://AWS_WEB_IDENTITY_TOKEN --aws-role-arn "$AMICHAIN_ROLE_ARN")
elif [[ -n ${AWS_ACCESS_KEY_ID:-} || -n ${AWS_SECRET_ACCESS_KEY:-} ]]; then
	[[ -n ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]] ||
		die "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (one of them is empty)"
	args+=(--aws-access-key-id env://AWS_ACCESS_KEY_ID --aws-secret-access-key env://AWS_SECRET_ACCESS_KEY)
	[[ -z ${AWS_SESSION_TOKEN:-} ]] || args+=(--aws-session-token env://AWS_SESSION_TOKEN)
else
	die "no AWS credentials: set AWS_WEB_IDENTITY_TOKEN + AMICHAIN_ROLE_ARN, or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (from the CI's secret store)"
fi

case $fn in
plan | build-all) call=("$fn" table) ;;
ids | sweep) call=("$fn") ;;
*) call=(image --name "$fn" build ami) ;;
esac

# --progress=plain: a readable log without a terminal (and the only mode some builds support).
# dagger prints a failed function's error last on stderr ("Error: ..."): for build-all that
# is the table, which goes to stdout like a successful one.
err=$(mktemp)
trap 'rm -f "$err"' EXIT
status=0
# A selected field (an AMI id) has no newline of its own: every result ends with one.
out=$(dagger --progress=plain call "${args[@]}" "${call[@]}" 2> >(tee "$err" >&2)) || status=$?
wait # for tee
[[ -z $out ]] || printf '%s\n' "$out"
if ((status != 0)); then
	awk '/^Error: /{found=1; buf=""} found{buf=buf $0 "\n"} END{printf "%s", buf}' "$err" |
		sed -e '1s/^Error: //' -e 's/ *\[traceparent:[0-9a-f-]*\]$//' -e '/^$/d'
fi
exit "$status"
