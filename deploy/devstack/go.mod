module backinstock/deploy/devstack

go 1.26.8
