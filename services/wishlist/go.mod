module backinstock/services/wishlist

go 1.26.8

require (
	backinstock/shared v0.0.0
	backinstock/topics v0.0.0
	github.com/IBM/sarama v1.61.1
	github.com/prometheus/client_golang v1.25.0
	github.com/redis/go-redis/v9 v9.23.0
	go.uber.org/zap v1.28.0
)
