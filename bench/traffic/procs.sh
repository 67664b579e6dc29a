# Sourced by ab.sh and cpu.sh. The caller declares pids=() and kills them on
# exit.
#
# start VAR PIDVAR OUT CMD...: starts CMD in the background with its output
# in OUT, adds its pid to pids, sets PIDVAR to it and VAR to the address its
# "ADDR host:port" line reports (waiting up to 10 s for it).
start() {
  local var=$1 pidvar=$2 out=$3; shift 3
  "$@" >"$out" 2>/dev/null &
  pids+=($!) # not in a subshell: the caller's cleanup must see it
  printf -v "$pidvar" '%s' "$!"
  for _ in $(seq 100); do
    if grep -q '^ADDR ' "$out" 2>/dev/null; then
      printf -v "$var" '%s' "$(sed -n 's/^ADDR //p' "$out" | head -1)"
      return
    fi
    sleep 0.1
  done
  echo "$* did not report its address" >&2
  exit 1
}
