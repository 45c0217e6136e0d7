# shellcheck shell=bash
# Sourced by the bench scripts: the CPU time of the processes that serve a
# system under test.  Set cpu_pids to them, read cpu_ticks before and after
# a job; the difference over the job's requests is its CPU per request.

cpu_pids=()

# cpu_ticks: user + sys clock ticks of every process in cpu_pids (one that
# has exited counts no more).
cpu_ticks() {
    local p t=0 f
    for p in "${cpu_pids[@]}"; do
        f=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${f% *} + ${f#* }))
    done
    echo "$t"
}
