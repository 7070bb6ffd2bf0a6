{{/* Names, labels and the parts every app pod shares. */}}

{{- define "appstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "appstack.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "appstack.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "appstack.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "appstack.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "appstack.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "appstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "appstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "appstack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "appstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: include "appstack.componentLabels" (list . "api") */}}
{{- define "appstack.componentLabels" -}}
{{ include "appstack.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "appstack.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The ConfigMap's data: .Values.config plus what other values imply. */}}
{{- define "appstack.configData" -}}
{{- if not (has .Values.secret.mode (list "files" "env")) }}
{{- fail (printf "secret.mode must be files or env, not %q" .Values.secret.mode) }}
{{- end }}
{{- if not (has .Values.database.pooler (list "none" "transaction")) }}
{{- fail (printf "database.pooler must be none or transaction, not %q" .Values.database.pooler) }}
{{- end }}
{{- $data := deepCopy .Values.config }}
{{- if eq .Values.database.pooler "transaction" }}
{{- $_ := set $data "DB_POOLER" "transaction" }}
{{- end }}
{{- if .Values.database.maxConnections }}
{{- $_ := set $data "DB_MAX_CONNECTIONS" (toString .Values.database.maxConnections) }}
{{- end }}
{{- if eq .Values.secret.mode "files" }}
{{- $_ := set $data "SETTINGS_SECRETS_DIR" "/run/secrets" }}
{{- end }}
{{- /* The connection budget counts the most pods each Deployment can run:
  its autoscaler's maximum (or its replicas), plus the rollout's surge pod. */}}
{{- $api := ternary .Values.api.autoscaling.maxReplicas .Values.api.replicas .Values.api.autoscaling.enabled }}
{{- $worker := ternary .Values.worker.keda.maxReplicaCount .Values.worker.replicas .Values.worker.keda.enabled }}
{{- $_ := set $data "API_REPLICAS" (toString (add1 $api)) }}
{{- $_ := set $data "WORKER_REPLICAS" (toString (add1 $worker)) }}
{{- range $key, $value := $data }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}

{{/* The Secret's keys one role reads: include "appstack.secretKeys" (list . "api") */}}
{{- define "appstack.secretKeys" -}}
{{- $root := index . 0 }}
{{- $keys := list "SECRET_KEY" "DATABASE_URL" "REDIS_URL" "METRICS_TOKEN" }}
{{- $keys = concat $keys $root.Values.secret.extraKeys }}
{{- if eq (index . 1) "migrate" }}
{{- $keys = concat $keys (list "DATABASE_OWNER_URL") $root.Values.secret.migrateExtraKeys }}
{{- end }}
{{- toJson (uniq $keys) }}
{{- end }}

{{/* Secret keys as environment variables (secret.mode env). */}}
{{- define "appstack.secretEnv" -}}
{{- $root := index . 0 }}
{{- if eq $root.Values.secret.mode "env" }}
{{- range (include "appstack.secretKeys" . | fromJsonArray) }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.secret.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "appstack.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{- define "appstack.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: shm
  mountPath: /dev/shm
{{- if eq (index . 0).Values.secret.mode "files" }}
- name: secrets
  mountPath: /run/secrets
  readOnly: true
{{- end }}
{{- end }}

{{/* The scratch volumes, and the Secret's keys as files (secret.mode files). */}}
{{- define "appstack.volumes" -}}
{{- $root := index . 0 }}
- name: tmp
  emptyDir:
    sizeLimit: {{ $root.Values.tmpSizeLimit }}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $root.Values.shmSizeLimit }}
{{- if eq $root.Values.secret.mode "files" }}
- name: secrets
  secret:
    secretName: {{ $root.Values.secret.existingSecret }}
    # Readable by the app's group (fsGroup) only.
    defaultMode: 0440
    items:
    {{- range (include "appstack.secretKeys" . | fromJsonArray) }}
      - key: {{ . }}
        path: {{ . }}
    {{- end }}
{{- end }}
{{- end }}

{{/* What every app pod's spec shares. */}}
{{- define "appstack.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod annotations: a changed ConfigMap rolls the pods. */}}
{{- define "appstack.podAnnotations" -}}
checksum/config: {{ include "appstack.configData" . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
