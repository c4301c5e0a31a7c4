#!/usr/bin/env bash
# Scan benchmarks (make bench): the Prefilter against grep -F -i on 64 MiB,
# then the discovery scan (DiscoverMany over a local file: prefilter, parsing
# of the candidate lines, exact matching) side by side with grep -F and
# ripgrep on a generated 1 GiB NDJSON file for 1 and 1000 subjects, the peak
# memory of a scan of 100 MiB and 1 GiB, and parallel scans of a many-blob
# dataset behind a throttled store. Prints the go test output, then the
# medians and ratios. Takes several minutes; the data files are generated
# once in ${TMPDIR:-/tmp} and reused.
#
# BENCH_COUNT (default 3) is the number of repetitions of the scan runs;
# GO (default go) the go command.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
COUNT=${BENCH_COUNT:-3}

# ripgrep is a column of the comparison: install it when it is missing and
# we may (root with apt-get); otherwise its benchmarks skip with a note.
if ! command -v rg >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "bench: installing ripgrep (Debian package ripgrep)"
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y -qq ripgrep >/dev/null 2>&1; then
			apt-get update -qq >/dev/null 2>&1 || true
			apt-get install -y -qq ripgrep >/dev/null 2>&1 || true
		fi
	fi
	if ! command -v rg >/dev/null 2>&1; then
		echo "bench: NOTE: ripgrep (rg) is not installed and could not be installed here:"
		echo "bench: NOTE: the rg and rg-i columns are skipped (install the Debian package ripgrep to get them)."
	fi
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "machine: $(nproc) CPUs,$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2), $(uname -sm)"
echo "tools: $($GO env GOVERSION); $(grep --version | head -1); $(command -v rg >/dev/null 2>&1 && rg --version | head -1 || echo 'no ripgrep')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo

echo "== shared/match: Prefilter line scan vs grep -F -i (64 MiB)"
$GO test -run '^$' -bench . -benchtime 3x ./shared/match/

echo
echo "== shared/sources/blobdataset: discovery scan vs grep -F and rg -F (1 GiB), $COUNT rounds"
# Rounds of -count 1 rather than -count N, so that the runs of the tools
# interleave and a burst of load elsewhere does not hit one tool only.
: >"$out"
for round in $(seq "$COUNT"); do
	echo "-- round $round"
	$GO test -run '^$' -bench 'BenchmarkScan$' -benchtime 3x -count 1 -timeout 120m ./shared/sources/blobdataset/ | tee -a "$out"
done

echo
echo "== shared/sources/blobdataset: peak memory (100 MiB and 1 GiB) and parallel scans of 16 throttled blobs"
$GO test -run '^$' -bench 'BenchmarkScanMemory$|BenchmarkScanParallel$' -benchtime 1x -count 1 -timeout 60m ./shared/sources/blobdataset/ | tee -a "$out"

echo
echo "== Summary (MB/s: median of the runs; ratio: dsr MB/s / tool MB/s)"
awk '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) {
		t = a[i] + 0
		for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	if (n == 0) return ""
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkScan\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkScan\//, "", name)
	for (i = 2; i < NF; i++) if ($(i + 1) == "MB/s") mbs[name] = mbs[name] " " $i
	order[name] = 1
}
/^BenchmarkScanMemory\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkScanMemory\//, "", name)
	line = ""
	for (i = 2; i < NF; i++) if ($(i + 1) ~ /MiB$|^records$/) line = line sprintf("  %s %s", $(i + 1), $i)
	mem[name] = line
}
/^BenchmarkScanParallel\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkScanParallel\//, "", name)
	for (i = 2; i < NF; i++) if ($(i + 1) == "MB/s") par[name] = $i
}
END {
	for (name in mbs) med[name] = median(mbs[name])
	printf "%-32s %10s\n", "benchmark", "MB/s"
	for (name in med) printf "%-32s %10.0f   (runs:%s)\n", name, med[name], mbs[name] | "sort"
	close("sort")
	print ""
	split("1 1000", subjects, " ")
	split("grep grep-i rg rg-i rg-i-nommap", tools, " ")
	for (s = 1; s <= 2; s++) {
		n = subjects[s]; dsr = med["subjects=" n "/dsr"]
		if (dsr == "") continue
		for (t = 1; t <= 5; t++) {
			tool = med["subjects=" n "/" tools[t]]
			if (tool == "") { printf "subjects=%-5s dsr / %-11s   skipped (no %s)\n", n, tools[t], tools[t]; continue }
			printf "subjects=%-5s dsr / %-11s %6.2fx\n", n, tools[t], dsr / tool
		}
		target = (n == 1) ? 0.5 : 0.25
		g = med["subjects=" n "/grep"]
		if (g != "") printf "subjects=%-5s target dsr >= %.2f x grep -F: %s\n", n, target, (dsr / g >= target) ? "met" : "NOT MET"
		# Issue 15: one subject at least as fast as rg -F -i.
		ri = med["subjects=" n "/rg-i"]
		if (n == 1 && ri != "") printf "subjects=%-5s target dsr >= 1 x rg -F -i: %s\n", n, (dsr / ri >= 1) ? "met" : "NOT MET"
	}
	print ""
	for (name in mem) print name mem[name] | "sort"
	close("sort")
	print ""
	for (name in par) printf "parallel %-28s %8.1f MB/s\n", name, par[name] | "sort -t= -k3 -n"
	close("sort -t= -k3 -n")
}
' "$out"
