set terminal pngcairo size 1000,450 font 'sans,10'
set grid
set output 'sigma-labels100.png'
set multiplot layout 1,2 title 'NoiseBoost sigma sweep, 100% labels (mean ± std over seeds)'
set xlabel 'sigma'
set ylabel 'CHAIR_i (lower is better)'
set key top left
plot for [g=0:3] 'sigma-labels100.dat' using 1:(column(2+4*g)):(column(3+4*g)) with yerrorlines title word('test test-counter test-shift test-dense', g+1)
set ylabel 'tuple F1 (higher is better)'
plot for [g=0:3] 'sigma-labels100.dat' using 1:(column(4+4*g)):(column(5+4*g)) with yerrorlines title word('test test-counter test-shift test-dense', g+1)
unset multiplot
set output 'sigma-labels25.png'
set multiplot layout 1,2 title 'NoiseBoost sigma sweep, 25% labels (mean ± std over seeds)'
set xlabel 'sigma'
set ylabel 'CHAIR_i (lower is better)'
set key top left
plot for [g=0:3] 'sigma-labels25.dat' using 1:(column(2+4*g)):(column(3+4*g)) with yerrorlines title word('test test-counter test-shift test-dense', g+1)
set ylabel 'tuple F1 (higher is better)'
plot for [g=0:3] 'sigma-labels25.dat' using 1:(column(4+4*g)):(column(5+4*g)) with yerrorlines title word('test test-counter test-shift test-dense', g+1)
unset multiplot
set output 'labels.png'
set title 'tuple F1 on test against labeled fraction (mean ± std)'
set xlabel 'labeled fraction (%)'
set ylabel 'tuple F1'
set key bottom right
set xrange [0:105]
plot 'labels.dat' index 0 using 1:2:3 with yerrorlines title 'supervised sigma 0', 'labels.dat' index 1 using 1:2:3 with yerrorlines title 'supervised sigma 0.3', 'labels.dat' index 2 using 1:2:3 with yerrorlines title 'semi, raw pseudo-labels', 'labels.dat' index 3 using 1:2:3 with yerrorlines title 'semi, filtered'
set autoscale x
unset title
set output 'shift.png'
set title 'CHAIR_i against shift strength (blur, contrast, noise, occlusion averaged)'
set xlabel 'shift strength (0: clean test)'
set ylabel 'CHAIR_i'
set key top left
set xtics 0,1,3
plot 'shift.dat' index 0 using 1:2:3 with yerrorlines title 'sup100-s0 (sigma 0, 100%)', 'shift.dat' index 1 using 1:2:3 with yerrorlines title 'sup100-s03 (sigma 0.3, 100%)', 'shift.dat' index 2 using 1:2:3 with yerrorlines title 'sup25-s0 (sigma 0, 25%)', 'shift.dat' index 3 using 1:2:3 with yerrorlines title 'sup25-s03 (sigma 0.3, 25%)'
set xtics autofreq
unset title
set output 'attention.png'
set multiplot layout 1,2 title 'share of attention on the visual tokens per decoder layer'
set xlabel 'decoder layer'
set ylabel 'visual share'
set key bottom right
set xtics 1
set title 'all caption positions'
set xrange [-0.5:3.5]
plot 'attention.dat' index 0 using 1:2:3 with yerrorlines title 'sup100-s0', 'attention.dat' index 3 using 1:2:3 with yerrorlines title 'sup100-s03', 'attention.dat' index 6 using 1:2:3 with yerrorlines title 'sup25-s0', 'attention.dat' index 9 using 1:2:3 with yerrorlines title 'sup25-s03'
set title 'correct (solid) vs hallucinated (dashed) statements'
plot 'attention.dat' index 1 using 1:2 with linespoints lc 1 dt 1 title 'sup100-s0 correct', 'attention.dat' index 2 using 1:2 with linespoints lc 1 dt 2 title 'sup100-s0 hallucinated', 'attention.dat' index 4 using 1:2 with linespoints lc 2 dt 1 title 'sup100-s03 correct', 'attention.dat' index 5 using 1:2 with linespoints lc 2 dt 2 title 'sup100-s03 hallucinated', 'attention.dat' index 7 using 1:2 with linespoints lc 3 dt 1 title 'sup25-s0 correct', 'attention.dat' index 8 using 1:2 with linespoints lc 3 dt 2 title 'sup25-s0 hallucinated', 'attention.dat' index 10 using 1:2 with linespoints lc 4 dt 1 title 'sup25-s03 correct', 'attention.dat' index 11 using 1:2 with linespoints lc 4 dt 2 title 'sup25-s03 hallucinated'
unset multiplot
set xtics autofreq
set autoscale x
unset title
