{{- define "budapp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "budapp.labels" -}}
app.kubernetes.io/name: budapp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "budapp.selector" -}}
app.kubernetes.io/name: budapp
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "budapp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "budapp.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "budapp.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "budapp.runtimeNamespace" -}}
{{ .Values.kubernetesProvider.namespace | default .Release.Namespace }}
{{- end -}}

{{- define "budapp.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-keys" (include "budapp.fullname" .)) }}
{{- end -}}

{{/* The settings every budapp container reads: the ConfigMap, the keys, the URLs. */}}
{{- define "budapp.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "budapp.fullname" . }}
  - secretRef:
      name: {{ include "budapp.secretName" . }}
{{- if .Values.database.existingSecret }}
  - secretRef:
      name: {{ .Values.database.existingSecret }}
{{- end }}
{{- if .Values.redis.existingSecret }}
  - secretRef:
      name: {{ .Values.redis.existingSecret }}
{{- end }}
env:
  - name: BUDAPP_REPLICA_ID
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
{{- end -}}

{{- define "budapp.volumes" -}}
volumes:
  # The root filesystem is read-only: budapp writes only its data directory and /tmp.
  - name: data
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "budapp.mounts" -}}
volumeMounts:
  - name: data
    mountPath: /var/lib/budapp
  - name: tmp
    mountPath: /tmp
{{- end -}}
