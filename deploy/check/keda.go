package check

import (
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScaledObject mirrors the fields of KEDA's keda.sh/v1alpha1 ScaledObject
// (github.com/kedacore/keda apis/keda/v1alpha1) that a manifest may set.
// KEDA's own module drags in most of Kubernetes' controller stack, so the
// type is restated here; strict decoding then rejects a misspelt field the
// same way the API server's schema would.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is keda.sh/v1alpha1 ScaledObjectSpec.
type ScaledObjectSpec struct {
	ScaleTargetRef        *ScaleTarget    `json:"scaleTargetRef"`
	PollingInterval       *int32          `json:"pollingInterval,omitempty"`
	InitialCooldownPeriod *int32          `json:"initialCooldownPeriod,omitempty"`
	CooldownPeriod        *int32          `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount      *int32          `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32          `json:"maxReplicaCount,omitempty"`
	Advanced              *AdvancedConfig `json:"advanced,omitempty"`
	Triggers              []ScaleTrigger  `json:"triggers"`
	Fallback              *Fallback       `json:"fallback,omitempty"`
}

// ScaleTarget is keda.sh/v1alpha1 ScaleTarget.
type ScaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

// AdvancedConfig is keda.sh/v1alpha1 AdvancedConfig (without scaling modifiers).
type AdvancedConfig struct {
	HorizontalPodAutoscalerConfig *HorizontalPodAutoscalerConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
	RestoreToOriginalReplicaCount bool                           `json:"restoreToOriginalReplicaCount,omitempty"`
}

// HorizontalPodAutoscalerConfig is keda.sh/v1alpha1 HorizontalPodAutoscalerConfig.
type HorizontalPodAutoscalerConfig struct {
	Name     string                                         `json:"name,omitempty"`
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// ScaleTrigger is keda.sh/v1alpha1 ScaleTriggers.
type ScaleTrigger struct {
	Type              string                         `json:"type"`
	Name              string                         `json:"name,omitempty"`
	UseCachedMetrics  bool                           `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string              `json:"metadata"`
	AuthenticationRef *AuthenticationRef             `json:"authenticationRef,omitempty"`
	MetricType        autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// AuthenticationRef is keda.sh/v1alpha1 AuthenticationRef.
type AuthenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

// Fallback is keda.sh/v1alpha1 Fallback.
type Fallback struct {
	FailureThreshold int32 `json:"failureThreshold"`
	Replicas         int32 `json:"replicas"`
}

// TriggerAuthentication mirrors keda.sh/v1alpha1 TriggerAuthentication for
// the secret-backed parameters (SASL, TLS) a Kafka trigger may need.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TriggerAuthenticationSpec `json:"spec"`
}

// TriggerAuthenticationSpec is the secretTargetRef/env part of KEDA's spec.
type TriggerAuthenticationSpec struct {
	SecretTargetRef []AuthSecretTargetRef `json:"secretTargetRef,omitempty"`
	Env             []AuthEnvironment     `json:"env,omitempty"`
}

// AuthSecretTargetRef is keda.sh/v1alpha1 AuthSecretTargetRef.
type AuthSecretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// AuthEnvironment is keda.sh/v1alpha1 AuthEnvironment.
type AuthEnvironment struct {
	Parameter     string `json:"parameter"`
	Name          string `json:"name"`
	ContainerName string `json:"containerName,omitempty"`
}

// kafkaTriggerKeys are the metadata keys KEDA's Kafka scaler reads; any other
// key is a typo KEDA would silently ignore.
var kafkaTriggerKeys = map[string]bool{
	"bootstrapServers": true, "bootstrapServersFromEnv": true,
	"consumerGroup": true, "consumerGroupFromEnv": true,
	"topic": true, "topicFromEnv": true,
	"partitionLimitation": true, "lagThreshold": true, "activationLagThreshold": true,
	"offsetResetPolicy": true, "allowIdleConsumers": true, "excludePersistentLag": true,
	"version": true, "scaleToZeroOnInvalidOffset": true, "limitToPartitionsWithLag": true,
	"ensureEvenDistributionOfPartitions": true, "sasl": true, "tls": true, "unsafeSsl": true,
}

// kafkaAuthParams are the parameters KEDA's Kafka scaler takes from a
// TriggerAuthentication (SASL and TLS).
var kafkaAuthParams = map[string]bool{
	"sasl": true, "username": true, "password": true,
	"tls": true, "ca": true, "cert": true, "key": true, "keyPassword": true, "unsafeSsl": true,
	"oauthTokenEndpointUri": true, "scopes": true, "oauthExtensions": true,
}

// checkTriggerAuth: every Kafka trigger names a TriggerAuthentication of the
// overlay that sets KEDA's SASL mode (and TLS), so the scaler can read the
// lag of a broker that requires authentication, as every process can.
func (c *checker) checkTriggerAuth(r *Rendered, obj, tp string, tr ScaleTrigger) {
	ref := tr.AuthenticationRef
	if ref == nil {
		c.add(r.Dir, obj, tp+".authenticationRef", "missing: name the TriggerAuthentication with the Kafka SASL/TLS settings (base/keda-auth.yaml)")
		return
	}
	if ref.Kind == "ClusterTriggerAuthentication" {
		return // cluster-wide, outside the overlay
	}
	var ta *TriggerAuthentication
	for _, t := range r.TriggerAuths {
		if t.Name == ref.Name {
			ta = t
		}
	}
	if ta == nil {
		c.add(r.Dir, obj, tp+".authenticationRef.name", "%q names no TriggerAuthentication of the overlay", ref.Name)
		return
	}
	params := map[string]bool{}
	for i, s := range ta.Spec.SecretTargetRef {
		params[s.Parameter] = true
		if !kafkaAuthParams[s.Parameter] {
			c.add(r.Dir, "TriggerAuthentication/"+ta.Name, fmt.Sprintf("spec.secretTargetRef[%d].parameter", i), "%q is not a parameter of KEDA's Kafka scaler", s.Parameter)
		}
	}
	for _, e := range ta.Spec.Env {
		params[e.Parameter] = true
	}
	for _, want := range []string{"sasl", "tls"} {
		if !params[want] {
			c.add(r.Dir, "TriggerAuthentication/"+ta.Name, "spec.secretTargetRef", "no %q parameter: KEDA would reach the brokers without it", want)
		}
	}
}
