package e2e

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// SetTopicConfig sets one configuration entry of topic (e.g.
// max.message.bytes), as kafka-configs.sh --alter --add-config does.
func SetTopicConfig(ctx context.Context, cl *kafka.Client, topic, key, value string) error {
	res, err := cl.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: key, Value: value, ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err == nil && len(res.Resources) > 0 {
		err = res.Resources[0].Error
	}
	if err != nil {
		return fmt.Errorf("e2e: set %s=%s on %s: %w", key, value, topic, err)
	}
	return nil
}
