{{/* Chart name, "<release>-<chart>" prefix and component names (DNS labels, ≤ 63). */}}
{{- define "smollm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "smollm.fullname" -}}
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

{{/* (dict "root" $ "component" "gateway") → "<fullname>-gateway"; refuses names over 63. */}}
{{- define "smollm.componentName" -}}
{{- $n := printf "%s-%s" (include "smollm.fullname" .root) .component -}}
{{- if gt (len $n) 63 -}}
{{- fail (printf "name %q is longer than 63 characters: shorten the release name or set fullnameOverride" $n) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* (dict "root" $ "pool" $pool) → "<fullname>-worker-<pool>"; ≤ 52 so that pods'
     controller-revision-hash labels stay ≤ 63 characters. */}}
{{- define "smollm.workerName" -}}
{{- $n := printf "%s-worker-%s" (include "smollm.fullname" .root) .pool.name -}}
{{- if gt (len $n) 52 -}}
{{- fail (printf "worker StatefulSet name %q is longer than 52 characters: shorten the release name, fullnameOverride or the pool name" $n) -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{- define "smollm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* (dict "root" $ "component" "gateway" ["pool" "short"]) → selector labels. */}}
{{- define "smollm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smollm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .pool }}
smollm.io/pool: {{ .pool }}
{{- end }}
{{- end -}}

{{/* Same argument → all labels. */}}
{{- define "smollm.labels" -}}
helm.sh/chart: {{ include "smollm.chart" .root }}
{{ include "smollm.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: smollm-cluster
{{- end -}}

{{/* (dict "root" $ "image" .Values.gateway.image) → "registry/repository:tag". */}}
{{- define "smollm.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "smollm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "smollm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by every smollm pod (indent 6 inside a pod template). */}}
{{- define "smollm.podCommon" -}}
serviceAccountName: {{ include "smollm.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Redis URL environment variable for the scheduler, the workers and the gateway (per-key limits). */}}
{{- define "smollm.redisUrlEnv" -}}
{{- if eq .Values.redis.mode "internal" -}}
- name: SMOLLM_REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "smollm.componentName" (dict "root" . "component" "redis")) | quote }}
{{- else if .Values.redis.external.existingSecret.name -}}
- name: SMOLLM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret.name }}
      key: {{ .Values.redis.external.existingSecret.key }}
{{- else -}}
{{- $url := required "redis.mode=external needs redis.external.url or redis.external.existingSecret.name" .Values.redis.external.url -}}
{{- if not (regexMatch "^rediss?://" $url) -}}
{{- fail (printf "redis.external.url must start with redis:// or rediss://, got %q" $url) -}}
{{- end -}}
- name: SMOLLM_REDIS_URL
  value: {{ $url | quote }}
{{- end -}}
{{- end -}}

{{/* Pod name and namespace from the downward API (must come before any $(POD_NAME) use). */}}
{{- define "smollm.downwardEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{/* SMOLLM_MODEL / SMOLLM_MODELS_DIR of the scheduler and the workers. */}}
{{- define "smollm.modelEnv" -}}
{{- $m := .Values.model -}}
{{- if eq $m.source "hf" }}
- name: SMOLLM_MODEL
  value: {{ required "model.uri is required with model.source=hf" $m.uri | quote }}
{{- else if eq $m.source "pvc" }}
- name: SMOLLM_MODEL
  value: {{ printf "/models/%s" (trimPrefix "/" (required "model.pvc.path is required with model.source=pvc" $m.pvc.path)) | quote }}
{{- else }}
- name: SMOLLM_MODEL
  value: tiny
{{- end }}
- name: SMOLLM_MODELS_DIR
  value: /models
- name: SMOLLM_MODEL_FALLBACK
  value: none
# Where generated tiny models are written (model.source=tiny); the image's own
# directory is read-only.
- name: SMOLLM_MODEL_CACHE_DIR
  value: /models
{{- end -}}

{{/* The `models` volume for the scheduler (sizeLimit) — the workers build theirs. */}}
{{- define "smollm.pvcModelVolume" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ required "model.pvc.claimName is required with model.source=pvc" .Values.model.pvc.claimName }}
    readOnly: true
{{- end -}}

{{/* Init container that fills /models (source=hf). Argument: (dict "root" $ "image" "<ref>" "pullPolicy" "...") */}}
{{- define "smollm.modelPullInitContainer" -}}
{{- $m := .root.Values.model -}}
- name: model-pull
  image: {{ .image | quote }}
  imagePullPolicy: {{ .pullPolicy }}
  workingDir: /app
  command: ["npx", "--no", "node-llama-cpp", "pull", "--dir", "/models", "--noProgress", {{ $m.uri | quote }}]
  env:
    - name: HOME
      value: /tmp
    - name: NODE_LLAMA_CPP_SKIP_DOWNLOAD
      value: "true"
    {{- if $m.hf.tokenSecret.name }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ $m.hf.tokenSecret.name }}
          key: {{ $m.hf.tokenSecret.key }}
    {{- end }}
    {{- if $m.hf.endpoint }}
    - name: HF_ENDPOINT
      value: {{ $m.hf.endpoint | quote }}
    {{- end }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
  resources:
    {{- toYaml $m.pullResources | nindent 4 }}
  volumeMounts:
    - name: models
      mountPath: /models
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* Seconds: a configured grace period, or drain + margin; refuses one shorter than the drain. */}}
{{- define "smollm.gracePeriod" -}}
{{- $drain := div (add (int64 .drainTimeoutMs) 999) 1000 -}}
{{- $need := add $drain (int64 (default 0 .preStop)) -}}
{{- $set := int64 (default 0 .configured) -}}
{{- if eq $set 0 -}}
{{- add $need (int64 .margin) -}}
{{- else if lt $set $need -}}
{{- fail (printf "%s.terminationGracePeriodSeconds=%d is shorter than its drain timeout + preStop (%d s)" .what $set $need) -}}
{{- else -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{/* Mutual TLS inside the cluster (tls.internal): environment of every gateway, scheduler and worker container. */}}
{{- define "smollm.mtlsEnv" -}}
{{- if .Values.tls.internal.enabled -}}
- name: SMOLLM_MTLS_CA
  value: /etc/smollm/mtls/ca.crt
- name: SMOLLM_MTLS_CERT
  value: /etc/smollm/mtls/tls.crt
- name: SMOLLM_MTLS_KEY
  value: /etc/smollm/mtls/tls.key
{{- end -}}
{{- end -}}

{{/* Mutual TLS inside the cluster: the Secret's mount. */}}
{{- define "smollm.mtlsVolumeMount" -}}
{{- if .Values.tls.internal.enabled -}}
- name: mtls
  mountPath: /etc/smollm/mtls
  readOnly: true
{{- end -}}
{{- end -}}

{{/* Mutual TLS inside the cluster: the Secret as a volume. */}}
{{- define "smollm.mtlsVolume" -}}
{{- if .Values.tls.internal.enabled -}}
- name: mtls
  secret:
    secretName: {{ required "tls.internal.existingSecret is required when tls.internal.enabled" .Values.tls.internal.existingSecret }}
{{- end -}}
{{- end -}}

{{/* "HTTPS" when the gateway serves TLS (tls.gateway), else "HTTP": its probes' scheme. */}}
{{- define "smollm.gatewayScheme" -}}
{{- ternary "HTTPS" "HTTP" .Values.tls.gateway.enabled -}}
{{- end -}}
