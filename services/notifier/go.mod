module backinstock/services/notifier

go 1.26.8

require (
	backinstock/shared v0.0.0
	backinstock/topics v0.0.0
	github.com/IBM/sarama v1.61.1
	github.com/nats-io/jwt/v2 v2.8.2
	github.com/nats-io/nats-server/v2 v2.15.2
	github.com/nats-io/nats.go v1.55.0
	github.com/nats-io/nkeys v0.4.16
	github.com/prometheus/client_golang v1.25.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	go.uber.org/zap v1.28.0
	golang.org/x/time v0.16.0
)

replace (
	backinstock/shared => ../../shared
	backinstock/topics => ../../topics
)

replace (
	backinstock/shared => ../../shared
	backinstock/topics => ../../topics
)
