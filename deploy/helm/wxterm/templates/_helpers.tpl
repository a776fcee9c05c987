{{/* Names and labels. */}}
{{- define "wxterm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wxterm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wxterm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "wxterm.labels" -}}
helm.sh/chart: {{ include "wxterm.chart" . }}
app.kubernetes.io/name: {{ include "wxterm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wxterm
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector of the consumer pods (not the replay Job's: component differs). */}}
{{- define "wxterm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wxterm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "wxterm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wxterm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "wxterm.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
wxterm.str renders a value for an env var: integral numbers without an
exponent (YAML numbers arrive as float64, and 1000000 would print as 1e+06).
*/}}
{{- define "wxterm.str" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
wxterm.durationSeconds parses a Go duration ("20s", "1m30s", "1.5h",
"500ms") into seconds; rendering fails on anything else.
*/}}
{{- define "wxterm.durationSeconds" -}}
{{- $d := toString . | trim -}}
{{- $term := "([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h)" -}}
{{- if eq $d "0" -}}
0
{{- else if not (regexMatch (printf "^(%s)+$" $term) $d) -}}
{{- fail (printf "config.shutdownTimeout %q is not a Go duration such as 20s or 1m30s" $d) -}}
{{- else -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll $term $d -1 -}}
{{- $num := regexFind "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" . -}}
{{- $unit := trimPrefix $num . -}}
{{- $total = addf $total (mulf (float64 $num) (get $units $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
{{- end -}}

{{/*
wxterm.terminationGracePeriodSeconds: Kubernetes must wait longer than the
consumer's -shutdown-timeout after SIGTERM, or in-flight intents are cut off
before their offsets are committed.
*/}}
{{- define "wxterm.terminationGracePeriodSeconds" -}}
{{- $timeout := .Values.config.shutdownTimeout | default "20s" -}}
{{- $shutdown := include "wxterm.durationSeconds" $timeout | float64 | ceil | int64 -}}
{{- $set := .Values.terminationGracePeriodSeconds | default 0 | int64 -}}
{{- if eq $set 0 -}}
{{- add $shutdown (.Values.terminationGraceMarginSeconds | int64) -}}
{{- else if le $set $shutdown -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than config.shutdownTimeout (%s, %d seconds): Kubernetes would kill the consumer before it finishes in-flight intents and commits; raise it or set it to 0 to compute it" $set $timeout $shutdown) -}}
{{- else -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{/* Name of the chart-made Secret holding inline secret values. */}}
{{- define "wxterm.secretName" -}}
{{- include "wxterm.fullname" . -}}
{{- end -}}

{{/*
wxterm.inlineSecrets: the chart Secret's data (YAML map; empty when every
secret comes from an existingSecret).
*/}}
{{- define "wxterm.inlineSecrets" -}}
{{- $d := dict -}}
{{- $v := .Values -}}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret) -}}
{{- $_ := set $d "kafka-sasl-username" $v.kafka.sasl.username -}}
{{- $_ := set $d "kafka-sasl-password" $v.kafka.sasl.password -}}
{{- end -}}
{{- if and $v.redis.auth.enabled (not $v.redis.auth.existingSecret) -}}
{{- $_ := set $d "redis-password" $v.redis.auth.password -}}
{{- end -}}
{{- if and (not $v.merchants.enabled) (not $v.merchant.existingSecret) -}}
{{- $_ := set $d "mch-private-key.pem" $v.merchant.privateKey -}}
{{- if ne $v.merchant.verification "certificates" -}}
{{- $_ := set $d "wechatpay-public-key.pem" $v.merchant.publicKey -}}
{{- end -}}
{{- end -}}
{{- if and (include "wxterm.apiv3Key" .) (not $v.merchant.apiv3Key.existingSecret) -}}
{{- $_ := set $d "apiv3-key" $v.merchant.apiv3Key.value -}}
{{- end -}}
{{- if $d }}{{ toYaml $d }}{{ end -}}
{{- end -}}

{{/* wxterm.apiv3Key: "true" when the one merchant's verification needs the APIv3 key. */}}
{{- define "wxterm.apiv3Key" -}}
{{- if and (not .Values.merchants.enabled) (ne .Values.merchant.verification "public_key") -}}true{{- end -}}
{{- end -}}

{{/* wxterm.publicKey: "true" when the one merchant's verification uses the public key. */}}
{{- define "wxterm.publicKey" -}}
{{- if ne .Values.merchant.verification "certificates" -}}true{{- end -}}
{{- end -}}

{{/* Mount points of the secret files. */}}
{{- define "wxterm.merchantDir" -}}/etc/wxterm/merchant{{- end -}}
{{- define "wxterm.merchantsDir" -}}/etc/wxterm/merchants{{- end -}}

{{/*
wxterm.validate fails rendering with a clear message on values the consumer
could not run with.
*/}}
{{- define "wxterm.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.brokers -}}
{{- fail "kafka.brokers is required (WXTERM_BROKERS)" -}}
{{- end -}}
{{- if not $v.redis.addrs -}}
{{- fail "redis.addrs is required (WXTERM_REDIS_ADDRS)" -}}
{{- end -}}
{{- if not (has $v.kafka.sasl.mechanism (list "" "plain" "scram-sha-256" "scram-sha-512")) -}}
{{- fail (printf "kafka.sasl.mechanism %q: want plain, scram-sha-256, scram-sha-512 or empty" $v.kafka.sasl.mechanism) -}}
{{- end -}}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret) (not (and $v.kafka.sasl.username $v.kafka.sasl.password)) -}}
{{- fail "kafka.sasl.mechanism is set: set kafka.sasl.existingSecret, or kafka.sasl.username and kafka.sasl.password" -}}
{{- end -}}
{{- if and $v.redis.auth.enabled (not $v.redis.auth.existingSecret) (not $v.redis.auth.password) -}}
{{- fail "redis.auth.enabled: set redis.auth.existingSecret or redis.auth.password" -}}
{{- end -}}
{{- range $name, $tls := dict "kafka" $v.kafka.tls "redis" $v.redis.tls -}}
{{- if ne (empty $tls.certKey) (empty $tls.keyKey) -}}
{{- fail (printf "%s.tls: set both certKey and keyKey (mutual TLS) or neither" $name) -}}
{{- end -}}
{{- if and $tls.enabled $tls.certKey (not $tls.existingSecret) -}}
{{- fail (printf "%s.tls.certKey needs %s.tls.existingSecret" $name $name) -}}
{{- end -}}
{{- end -}}
{{- if $v.merchants.enabled -}}
{{- if not $v.merchants.existingSecret -}}
{{- fail "merchants.enabled: merchants.existingSecret (the merchants JSON and its PEM files) is required" -}}
{{- end -}}
{{- if not $v.merchants.fileKey -}}
{{- fail "merchants.enabled: merchants.fileKey is required" -}}
{{- end -}}
{{- else -}}
{{- if not (has $v.merchant.verification (list "public_key" "certificates" "both")) -}}
{{- fail (printf "merchant.verification %q: want public_key, certificates or both" $v.merchant.verification) -}}
{{- end -}}
{{- $required := list "mchid" "certSerial" -}}
{{- if include "wxterm.publicKey" . -}}
{{- $required = append $required "publicKeyId" -}}
{{- end -}}
{{- range $k := $required -}}
{{- if not (get $v.merchant $k) -}}
{{- fail (printf "merchant.%s is required (or enable merchants with a merchants file)" $k) -}}
{{- end -}}
{{- end -}}
{{- if and (include "wxterm.apiv3Key" .) (not $v.merchant.apiv3Key.existingSecret) (not $v.merchant.apiv3Key.value) -}}
{{- fail (printf "merchant.verification %s needs the APIv3 key: set merchant.apiv3Key.existingSecret or merchant.apiv3Key.value" $v.merchant.verification) -}}
{{- end -}}
{{- if and $v.merchant.apiv3Key.existingSecret $v.merchant.apiv3Key.value -}}
{{- fail "merchant.apiv3Key: set existingSecret or value, not both" -}}
{{- end -}}
{{- if and (not $v.merchant.existingSecret) (not (and $v.merchant.privateKey (or $v.merchant.publicKey (not (include "wxterm.publicKey" .))))) -}}
{{- fail "merchant: set merchant.existingSecret (a Secret with the merchant private key and the WeChat Pay public key), or merchant.privateKey and merchant.publicKey" -}}
{{- end -}}
{{- if and $v.merchant.existingSecret (or $v.merchant.privateKey $v.merchant.publicKey) -}}
{{- fail "merchant: set merchant.existingSecret or the inline merchant.privateKey/publicKey, not both" -}}
{{- end -}}
{{- end -}}
{{- if and $v.serviceMonitor.enabled (not $v.service.enabled) -}}
{{- fail "serviceMonitor.enabled needs service.enabled" -}}
{{- end -}}
{{- if and $v.keda.enabled (gt (int64 $v.keda.minReplicaCount) (int64 $v.keda.maxReplicaCount)) -}}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" -}}
{{- end -}}
{{- if $v.replay.enabled -}}
{{- if and $v.replay.from $v.replay.offsets -}}
{{- fail "replay: set replay.from (timestamps) or replay.offsets, not both" -}}
{{- end -}}
{{- if not (or $v.replay.from $v.replay.offsets) -}}
{{- fail "replay.enabled: set replay.from (RFC 3339) or replay.offsets (e.g. 0:100-200)" -}}
{{- end -}}
{{- if and $v.replay.to (not $v.replay.from) -}}
{{- fail "replay.to needs replay.from" -}}
{{- end -}}
{{- end -}}
{{- $_ := include "wxterm.terminationGracePeriodSeconds" . -}}
{{- end -}}

{{/*
wxterm.reserved: env-name prefixes that the chart sets from structured values;
`config` may not set them.
*/}}
{{- define "wxterm.reserved" -}}
WXTERM_BROKERS: kafka.brokers
WXTERM_GROUP: kafka.group
WXTERM_REQUEST_TOPIC: kafka.requestTopic
WXTERM_RESULT_TOPIC: kafka.resultTopic
WXTERM_DLQ_TOPIC: kafka.dlqTopic
WXTERM_NOTIFICATION_TOPIC: notify.topic
WXTERM_KAFKA_TLS: kafka.tls
WXTERM_KAFKA_SASL: kafka.sasl
WXTERM_REDIS_ADDRS: redis.addrs
WXTERM_REDIS_USERNAME: redis.username
WXTERM_REDIS_PASSWORD: redis.auth
WXTERM_REDIS_DB: redis.db
WXTERM_REDIS_TLS: redis.tls
WXTERM_MCH: merchant
WXTERM_WECHATPAY_PUBLIC_KEY: merchant
WXTERM_WECHATPAY_VERIFICATION: merchant.verification
WXTERM_APIV3_KEY: merchant.apiv3Key
WXTERM_ALLOWED_SUB_MCHIDS: merchant.allowedSubMchids
WXTERM_MERCHANTS_FILE: merchants
WXTERM_REPLAY: replay
WXTERM_HTTP_ADDR: httpPort
WXTERM_EMBEDDED: "nothing: in-process services are not for a deployment"
WXTERM_DEMO: "nothing: the demo is not for a deployment"
WXTERM_KEEP_RUNNING: "nothing: the demo is not for a deployment"
{{- end -}}

{{/*
wxterm.settings: every non-secret WXTERM_* env var of the consumer, as a YAML
map (the ConfigMap's data).
*/}}
{{- define "wxterm.settings" -}}
{{- $v := .Values -}}
{{- $s := dict -}}
{{- $_ := set $s "WXTERM_BROKERS" $v.kafka.brokers -}}
{{- $_ := set $s "WXTERM_GROUP" $v.kafka.group -}}
{{- $_ := set $s "WXTERM_REQUEST_TOPIC" $v.kafka.requestTopic -}}
{{- $_ := set $s "WXTERM_RESULT_TOPIC" $v.kafka.resultTopic -}}
{{- $_ := set $s "WXTERM_DLQ_TOPIC" $v.kafka.dlqTopic -}}
{{- /* The consumer reads what the notification endpoint writes only when the endpoint runs: the topic must exist. */ -}}
{{- if $v.notify.enabled }}{{ $_ := set $s "WXTERM_NOTIFICATION_TOPIC" $v.notify.topic }}{{ end -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- $_ := set $s "WXTERM_KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism -}}
{{- end -}}
{{- $_ := set $s "WXTERM_REDIS_ADDRS" $v.redis.addrs -}}
{{- if $v.redis.username -}}
{{- $_ := set $s "WXTERM_REDIS_USERNAME" $v.redis.username -}}
{{- end -}}
{{- $_ := set $s "WXTERM_REDIS_DB" (include "wxterm.str" ($v.redis.db | default 0)) -}}
{{- range $name, $tls := dict "kafka" $v.kafka.tls "redis" $v.redis.tls -}}
{{- if $tls.enabled -}}
{{- $p := printf "WXTERM_%s_TLS" (upper $name) -}}
{{- $dir := printf "/etc/wxterm/%s-tls" $name -}}
{{- $_ := set $s $p "true" -}}
{{- if $tls.serverName -}}
{{- $_ := set $s (printf "%s_SERVER_NAME" $p) $tls.serverName -}}
{{- end -}}
{{- if $tls.existingSecret -}}
{{- if $tls.caKey -}}
{{- $_ := set $s (printf "%s_CA_FILE" $p) (printf "%s/ca.crt" $dir) -}}
{{- end -}}
{{- if $tls.certKey -}}
{{- $_ := set $s (printf "%s_CERT_FILE" $p) (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $s (printf "%s_KEY_FILE" $p) (printf "%s/tls.key" $dir) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.merchants.enabled -}}
{{- $_ := set $s "WXTERM_MERCHANTS_FILE" (printf "%s/%s" (include "wxterm.merchantsDir" .) $v.merchants.fileKey) -}}
{{- else -}}
{{- $_ := set $s "WXTERM_MCHID" (include "wxterm.str" $v.merchant.mchid) -}}
{{- $_ := set $s "WXTERM_MCH_CERT_SERIAL" $v.merchant.certSerial -}}
{{- $_ := set $s "WXTERM_MCH_PRIVATE_KEY_FILE" (printf "%s/private-key.pem" (include "wxterm.merchantDir" .)) -}}
{{- $_ := set $s "WXTERM_WECHATPAY_VERIFICATION" $v.merchant.verification -}}
{{- if include "wxterm.publicKey" . -}}
{{- $_ := set $s "WXTERM_WECHATPAY_PUBLIC_KEY_ID" $v.merchant.publicKeyId -}}
{{- $_ := set $s "WXTERM_WECHATPAY_PUBLIC_KEY_FILE" (printf "%s/public-key.pem" (include "wxterm.merchantDir" .)) -}}
{{- end -}}
{{- if $v.merchant.allowedSubMchids -}}
{{- $_ := set $s "WXTERM_ALLOWED_SUB_MCHIDS" (include "wxterm.str" $v.merchant.allowedSubMchids) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $s "WXTERM_HTTP_ADDR" (printf ":%s" (include "wxterm.str" $v.httpPort)) -}}
{{- $reserved := include "wxterm.reserved" . | fromYaml -}}
{{- range $key, $val := $v.config -}}
{{- $env := printf "WXTERM_%s" (snakecase $key | upper) -}}
{{- range $prefix, $hint := $reserved -}}
{{- if hasPrefix $prefix $env -}}
{{- fail (printf "config.%s (%s) is managed by the chart: set %s instead" $key $env $hint) -}}
{{- end -}}
{{- end -}}
{{- if or (kindIs "map" $val) (kindIs "slice" $val) -}}
{{- fail (printf "config.%s: want a string, number or boolean" $key) -}}
{{- end -}}
{{- if not (or (kindIs "invalid" $val) (eq (toString $val) "")) -}}
{{- $_ := set $s $env (include "wxterm.str" $val) -}}
{{- end -}}
{{- end -}}
{{- toYaml $s -}}
{{- end -}}

{{/* wxterm.secretEnv: the env vars that come from Secrets (secretKeyRef). */}}
{{- define "wxterm.secretEnv" -}}
{{- $v := .Values -}}
{{- $chartSecret := include "wxterm.secretName" . -}}
{{- if $v.kafka.sasl.mechanism }}
- name: WXTERM_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.existingSecret | default $chartSecret }}
      key: {{ ternary $v.kafka.sasl.usernameKey "kafka-sasl-username" (not (empty $v.kafka.sasl.existingSecret)) }}
- name: WXTERM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.kafka.sasl.existingSecret | default $chartSecret }}
      key: {{ ternary $v.kafka.sasl.passwordKey "kafka-sasl-password" (not (empty $v.kafka.sasl.existingSecret)) }}
{{- end }}
{{- if $v.redis.auth.enabled }}
- name: WXTERM_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.auth.existingSecret | default $chartSecret }}
      key: {{ ternary $v.redis.auth.passwordKey "redis-password" (not (empty $v.redis.auth.existingSecret)) }}
{{- end }}
{{- if include "wxterm.apiv3Key" . }}
- name: WXTERM_APIV3_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.merchant.apiv3Key.existingSecret | default $chartSecret }}
      key: {{ ternary $v.merchant.apiv3Key.key "apiv3-key" (not (empty $v.merchant.apiv3Key.existingSecret)) }}
{{- end }}
{{- end -}}

{{/* wxterm.volumes: the Secret volumes of the key and certificate files. */}}
{{- define "wxterm.volumes" -}}
{{- $v := .Values -}}
{{- if $v.merchants.enabled }}
- name: merchants
  secret:
    secretName: {{ $v.merchants.existingSecret }}
    defaultMode: 288 # 0440: owner and fsGroup read
{{- else }}
- name: merchant
  secret:
    secretName: {{ $v.merchant.existingSecret | default (include "wxterm.secretName" .) }}
    defaultMode: 288 # 0440: owner and fsGroup read
    items:
      - key: {{ ternary $v.merchant.privateKeyKey "mch-private-key.pem" (not (empty $v.merchant.existingSecret)) }}
        path: private-key.pem
      {{- if include "wxterm.publicKey" . }}
      - key: {{ ternary $v.merchant.publicKeyKey "wechatpay-public-key.pem" (not (empty $v.merchant.existingSecret)) }}
        path: public-key.pem
      {{- end }}
{{- end }}
{{- range $name, $tls := dict "kafka" $v.kafka.tls "redis" $v.redis.tls }}
{{- if and $tls.enabled $tls.existingSecret (or $tls.caKey $tls.certKey) }}
- name: {{ $name }}-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 288 # 0440
    items:
      {{- if $tls.caKey }}
      - key: {{ $tls.caKey }}
        path: ca.crt
      {{- end }}
      {{- if $tls.certKey }}
      - key: {{ $tls.certKey }}
        path: tls.crt
      - key: {{ $tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* wxterm.volumeMounts: where the consumer container sees them. */}}
{{- define "wxterm.volumeMounts" -}}
{{- $v := .Values -}}
{{- if $v.merchants.enabled }}
- name: merchants
  mountPath: {{ include "wxterm.merchantsDir" . }}
  readOnly: true
{{- else }}
- name: merchant
  mountPath: {{ include "wxterm.merchantDir" . }}
  readOnly: true
{{- end }}
{{- range $name, $tls := dict "kafka" $v.kafka.tls "redis" $v.redis.tls }}
{{- if and $tls.enabled $tls.existingSecret (or $tls.caKey $tls.certKey) }}
- name: {{ $name }}-tls
  mountPath: /etc/wxterm/{{ $name }}-tls
  readOnly: true
{{- end }}
{{- end }}
{{- with $v.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* wxterm.podSecurityContext: values, with runAsNonRoot forced. */}}
{{- define "wxterm.podSecurityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy (.Values.podSecurityContext | default dict)) (dict "runAsNonRoot" true)) -}}
{{- end -}}

{{/* wxterm.securityContext: values, with the hardening the issue requires forced. */}}
{{- define "wxterm.securityContext" -}}
{{- toYaml (mustMergeOverwrite (deepCopy (.Values.securityContext | default dict)) (dict "runAsNonRoot" true "readOnlyRootFilesystem" true "allowPrivilegeEscalation" false)) -}}
{{- end -}}
