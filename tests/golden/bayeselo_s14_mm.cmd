readpgn tcec-season14-division3.pgn
elo
mm
ratings
covariance
ratings
scale
elo 0
elo 1
elo 2
elo 3
elo 4
elo 5
elo 6
elo 7
x
x
