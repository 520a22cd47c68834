module backinstock/services/notifier

go 1.26.8
