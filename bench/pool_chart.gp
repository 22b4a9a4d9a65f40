# pool_chart.gp — throughput of kvs-server against thread count, one line per pool × workload.
#
# Called by pool_bench.py --charts, once per engine:
#   gnuplot -e "engine='kvs'; datafile='bench/results/pools_kvs.dat'; \
#               outfile='bench/results/pools_kvs.png'; npools=3; sub1='...'; sub2='...'; \
#               xtics_list='1 2 4'" bench/pool_chart.gp
# datafile (written by pool_bench.py): a header line, then `threads` and one column per
# pool × workload in the order naive-set naive-get shared-set shared-get uv-set uv-get.
# Colour tells the pool, the dash the workload: solid = SET (writes, on the pool), dashed =
# GET (reads, on the loop threads).

if (!exists("engine"))     engine = "kvs"
if (!exists("datafile"))   datafile = "bench/results/pools_".engine.".dat"
if (!exists("outfile"))    outfile = "bench/results/pools_".engine.".png"
if (!exists("npools"))     npools = 3
if (!exists("sub1"))       sub1 = ""
if (!exists("sub2"))       sub2 = ""
if (!exists("xtics_list")) xtics_list = "1 2 4"

set terminal pngcairo size 1000,640 enhanced font "DejaVu Sans,11"
set output outfile

set title sprintf("kvs-server --engine %s: requests/s by thread pool and thread count\n%s\n%s", \
                  engine, sub1, sub2) noenhanced
set xlabel "threads T  (--threads T --pool-threads T)"
set ylabel "requests / second (redis-benchmark, median of rounds)"
set logscale x 2
set xrange [0.8:*]
set xtics ()
do for [t in xtics_list] { set xtics add (t t+0) }
set yrange [0:*]
set format y "%.0s%c"
set grid ytics xtics lc rgb "#dddddd"
set key outside right top vertical box opaque noenhanced \
    title "pool-workload\nsolid: SET (pool)\ndashed: GET (loop)"
set datafile missing "NaN"

colours = "#1f77b4 #d62728 #2ca02c #9467bd #ff7f0e"
set style data linespoints

# column 2+j: pool j/2, SET if j is even, GET if odd
plot for [j=0:2*npools-1] datafile using 1:(column(2+j)) title columnheader(2+j) \
     lc rgb word(colours, j/2+1) lw 2 dt j%2+1 pt (7-2*(j%2)) ps 1.2
