{{/*
Pod spec of an operator Job (status-job.yaml, redrive-job.yaml): one of the
image's commands with the consumer's ConfigMap (WXTERM_* env, each command
reads the flags it knows), Secret env and volumes, so it reaches the same
Kafka, Redis and WeChat Pay. Call with
(dict "root" $ "name" "status" "args" (list …) "env" (list …) "resources" …).
*/}}
{{- define "wxterm.opsPodSpec" -}}
{{- $ := .root -}}
restartPolicy: Never
serviceAccountName: {{ include "wxterm.serviceAccountName" $ }}
automountServiceAccountToken: {{ $.Values.serviceAccount.automountServiceAccountToken }}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "wxterm.podSecurityContext" $ | nindent 2 }}
containers:
  - name: {{ .name }}
    image: {{ include "wxterm.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    command: [{{ printf "/%s" .name | quote }}]
    {{- with .args }}
    args:
      {{- range . }}
      - {{ . | toString | quote }}
      {{- end }}
    {{- end }}
    securityContext:
      {{- include "wxterm.securityContext" $ | nindent 6 }}
    envFrom:
      - configMapRef:
          name: {{ include "wxterm.fullname" $ }}
    env:
      {{- range .env }}
      - name: {{ .name }}
        value: {{ .value | toString | quote }}
      {{- end }}
      {{- with include "wxterm.secretEnv" $ | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $.Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    resources:
      {{- toYaml (.resources | default $.Values.resources) | nindent 6 }}
    volumeMounts:
      {{- include "wxterm.volumeMounts" $ | trim | nindent 6 }}
volumes:
  {{- include "wxterm.volumes" $ | trim | nindent 2 }}
{{- with $.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
An operator Job around wxterm.opsPodSpec; same dict plus "job" (its values:
backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished). A Job's pod
template is immutable, so the name carries a hash of it, as the replay Job's.
*/}}
{{- define "wxterm.opsJob" -}}
{{- $ := .root -}}
{{- $pod := include "wxterm.opsPodSpec" . -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-%s-%s" (include "wxterm.fullname" $ | trunc 46 | trimSuffix "-") .name ($pod | sha256sum | trunc 8) }}
  labels:
    {{- include "wxterm.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  backoffLimit: {{ .job.backoffLimit }}
  {{- if .job.activeDeadlineSeconds }}
  activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
  {{- end }}
  ttlSecondsAfterFinished: {{ .job.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "wxterm.labels" $ | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
    spec:
      {{- $pod | nindent 6 }}
{{- end -}}
