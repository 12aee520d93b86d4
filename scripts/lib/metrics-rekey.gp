# gnuplot -e "data='...'; out='...png'" scripts/lib/metrics-rekey.gp
# A tunnel's outbound packet rate per SA across child rekeys, from Prometheus.
set terminal pngcairo size 900,420 font ",10" noenhanced
set output out
set key outside right top
set xlabel "seconds"
set ylabel "packets/s (rate over 3 s)"
set y2label "child SA pairs, rekeys"
set y2tics
set ytics nomirror
set grid
stats data skip 1 nooutput
n = STATS_columns
plot for [i=3:n-2] data using 1:i with lines lw 2 title columnhead(i), \
     data using 1:2 with lines dt 2 lc rgb "black" title "sum over SAs", \
     data using 1:(column(n-1)) axes x1y2 with steps lc rgb "gray40" title "iked_child_sas", \
     data using 1:(column(n)) axes x1y2 with steps lc rgb "red" title "child rekeys"
