# SPDX-License-Identifier: MIT
# Draws bench/soak.sh's samples: gnuplot -e "csv='soak.csv'; png='soak.png'" bench/soak.gp
# Columns (soak.py FIELDS): 1 t_s, 2 phase, 3 rss_kib, 4 connections, 5 tcp_sockets, 6 fds,
# 7 rooms, 8 send_queue_bytes, 9 tls_active, 10 tls_waiting, 11 accepted,
# 12 handshakes_failed, 13 slow_consumer_close, 14 messages_delivered.
set terminal pngcairo size 1400,900 noenhanced font ",10"
set output png
set datafile separator ","
set key top left
set grid
set xlabel "seconds"
set multiplot layout 2,2 title "ringcast soak: ".csv

set title "broker resident memory"
set ylabel "MiB"
plot csv skip 1 using 1:($3/1024) with linespoints pt 7 ps 0.4 title "RSS"

set title "connections and sockets"
set ylabel "count"
plot csv skip 1 using 1:4 with linespoints pt 7 ps 0.4 title "WebSocket connections (/stats)", \
     csv skip 1 using 1:5 with linespoints pt 7 ps 0.4 title "TCP sockets on the broker's ports", \
     csv skip 1 using 1:6 with lines title "open descriptors (/proc/PID/fd)"

set title "rooms and TLS handshakes"
set ylabel "count"
plot csv skip 1 using 1:7 with linespoints pt 7 ps 0.4 title "rooms", \
     csv skip 1 using 1:($9+$10) with lines title "TLS handshakes active + waiting"

set title "queued and cut"
set ylabel "KiB queued"
set y2label "slow consumers closed"
set y2tics
plot csv skip 1 using 1:($8/1024) with linespoints pt 7 ps 0.4 title "send queue (all connections)", \
     csv skip 1 using 1:13 axes x1y2 with steps title "slow consumers closed (total)"
unset multiplot
