#!/usr/bin/env bash
# The two-hop way into object storage, as teams do it without wxmedia:
# download to a file with curl, then upload the file with an S3 tool.
#
#   two_hop.sh s5cmd|boto3 URL FILE S3_ENDPOINT s3://BUCKET/KEY
#
# s5cmd: `s5cmd --endpoint-url S3_ENDPOINT cp FILE s3://BUCKET/KEY` (its
# defaults: 5 parts in flight, 50 MB parts); boto3: `upload_file` with its
# defaults (10 threads, 8 MB parts), run by BOTO3_PY (a python with boto3).
# Credentials from the environment (AWS_ACCESS_KEY_ID, ...), as both read
# them. Timed end to end, from curl's start until the upload returns (the
# object then exists: both finish with CompleteMultipartUpload or a
# PutObject). Prints "BENCH ok=1 host=TOOL mode=twohop bytes=N secs=S n=1".
set -euo pipefail
tool=$1 url=$2 file=$3 endpoint=$4 target=$5
t0=$EPOCHREALTIME
curl -sS --fail -o "$file" "$url"
case $tool in
  s5cmd) "${S5CMD:-s5cmd}" --endpoint-url "$endpoint" cp "$file" "$target" >/dev/null ;;
  boto3)
    rest=${target#s3://}
    "${BOTO3_PY:-python3}" -c '
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
s3.upload_file(sys.argv[2], sys.argv[3], sys.argv[4])
' "$endpoint" "$file" "${rest%%/*}" "${rest#*/}" ;;
  *) echo "two_hop.sh: unknown tool $tool" >&2; exit 2 ;;
esac
t1=$EPOCHREALTIME
bytes=$(stat -c %s "$file")
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
echo "BENCH ok=1 host=$tool mode=twohop bytes=$bytes secs=$secs n=1"
