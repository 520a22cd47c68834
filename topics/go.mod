module backinstock/topics

go 1.26.8
