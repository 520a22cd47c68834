module backinstock/services/inventory

go 1.26.8
